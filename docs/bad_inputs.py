"""Print the README's table of bad inputs: each case is made in a temporary folder and run through the
real CLI, and the table shows the exit code and the exact message. Run: python docs/bad_inputs.py"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from bp_train.cli import main
from bp_train.training.runfolder import FolderLock

HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))
ROW = "3," + ",".join(["0"] * 784)


def csv_text(*rows, header=HEADER):
    return "\n".join([header, *rows]) + "\n"


def with_cell(column, value, line_row=ROW):
    cells = line_row.split(",")
    cells[column] = value
    return ",".join(cells)


def cases(tmp: Path):
    good = tmp / "good.csv"
    good.write_text(csv_text(*[ROW.replace("3,", f"{d},", 1) for d in range(10)] * 3))
    fit = ["fit", "--quiet", "--epochs", "1", "--out", str(tmp / "run")]
    yaml_cases = {
        "YAML syntax error": "model:\n  hidden: [{size: 3\n",
        "empty config": "",
        "config not a mapping": "- relu\n- sigmoid\n",
        "unknown key": "train: {optimiser: {name: sgd}}\n",
        "wrong type": "train: {epochs: ten}\n",
        "zero size": "model: {hidden: [{size: 0}]}\n",
        "negative learning rate": "train: {optimizer: {lr: -0.1}}\n",
        "unknown activation": "model: {hidden: [{size: 10, activation: relux}]}\n",
        "unknown optimizer": "train: {optimizer: {name: adamw}}\n",
        "network too large for memory": "model: {hidden: [{size: 2000000}, {size: 2000000}]}\n",
        "conv block that does not fit": "model: {conv: [{filters: 8, kernel: 5, pool: 4}, {filters: 8, kernel: 7}]}\n",
        "input_shape disagrees with input_size": "model: {input_shape: [3, 28, 28]}\n",
        "duplicate key": "train:\n  epochs: 3\n  epochs: 5\n",
        "non-finite number": "train: {optimizer: {lr: .inf}}\n",
        "YAML alias bomb": "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
        + "model: {hidden: *i}\n",
        "YAML nested 600 deep": "model: " + "[" * 600 + "]" * 600 + "\n",
    }
    for name, text in yaml_cases.items():
        path = tmp / "exp.yaml"
        yield name, lambda path=path, text=text: (path.write_text(text), ["fit", "--config", str(path)])[1]
    data_cases = {
        "data file missing": None,
        "empty CSV": "",
        "CSV with a header only": csv_text(),
        "missing pixel column": csv_text(header=HEADER.rsplit(",", 1)[0]),
        "extra column": csv_text(ROW + ",x", header=HEADER + ",notes"),
        "non-numeric cell": csv_text(ROW, with_cell(101, "abc")),
        "empty cell": csv_text(ROW, with_cell(5, "")),
        "pixel out of range": csv_text(ROW, ROW, with_cell(301, "256")),
        "label out of range": csv_text(with_cell(0, "10")),
        "row with too many fields": csv_text(ROW, ROW + ",7"),
        "first row with extra fields": csv_text(ROW + ",7,7,7", ROW),
        "cell 'nan'": csv_text(ROW, with_cell(5, "nan")),
        "cell too big for a float (1e400)": csv_text(ROW, with_cell(9, "1e400")),
        "repeated column": csv_text(ROW, header=HEADER.replace("pixel5,", "pixel3,", 1)),
        "no label column (training)": csv_text(",".join(["0"] * 784), header=HEADER.split(",", 1)[1]),
        "not a CSV at all (binary)": bytes(range(256)) * 8,
    }
    for name, content in data_cases.items():
        path = tmp / "bad.csv"

        def make(path=path, content=content):
            path.unlink(missing_ok=True)
            if content is not None:
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
            return fit + ["--data", str(path)]

        yield name, make
    model = tmp / "run" / "model.npz"
    CliRunner().invoke(main, fit + ["--data", str(good)])
    test_csv = tmp / "test.csv"
    test_csv.write_text(csv_text(",".join(["0"] * 784), header=HEADER.split(",", 1)[1]))
    predict = ["predict", "--data", str(test_csv), "--out", str(tmp / "submission.csv")]

    def model_case(writer):
        def make():
            bad = tmp / "model.npz"
            bad.unlink(missing_ok=True)
            writer(bad)
            return ["predict", "--model", str(bad)] + predict[1:]

        return make

    yield "model: not a model (text)", model_case(lambda p: p.write_text("hello"))
    yield "model: truncated", model_case(lambda p: p.write_bytes(model.read_bytes()[:300]))
    yield "model: made by another program", model_case(lambda p: np.savez(p, weights=np.zeros(3)))
    yield "model: contains pickled objects", model_case(lambda p: np.savez(p, meta=np.array([{"x": 1}], dtype=object)))
    small = tmp / "small.csv"
    small.write_text("pixel0,pixel1\n1,2\n")

    def with_array(**changes):
        def write(path):
            with np.load(model, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            arrays.update(changes(arrays) if callable(changes) else changes)
            np.savez(path, **arrays)

        return write

    yield "model: NaN weights", model_case(with_array(**{"W1": np.full((784, 100), np.nan, np.float32)}))
    yield "model: an array the config does not name", model_case(with_array(extra=np.zeros(3)))
    yield (
        "model: compressed (a small file declaring a huge array)",
        model_case(
            lambda p: np.savez_compressed(p, meta=np.array('{"format": "bp-train-model/1"}'), W1=np.zeros((2000, 2000)))
        ),
    )
    yield (
        "--out names the model file",
        lambda: ["predict", "--model", str(model), "--data", str(test_csv), "--out", str(model)],
    )
    yield "reversed --rows", lambda: ["show", str(good), "--rows", "5-2"]
    yield "--tol nan", lambda: ["gradcheck", "--tol", "nan"]
    yield "data of another input size", lambda: ["predict", "--model", str(model), "--data", str(small)]
    yield (
        "output folder does not exist",
        lambda: [
            "predict",
            "--model",
            str(model),
            "--data",
            str(test_csv),
            "--out",
            str(tmp / "no" / "such" / "sub.csv"),
        ],
    )
    yield (
        "output path is the input file",
        lambda: ["predict", "--model", str(model), "--data", str(test_csv), "--out", str(test_csv)],
    )
    yield "contradictory options", lambda: ["fit", "--resume", str(tmp / "run"), "--out", str(tmp / "other")]
    yield (
        "resume with changed layer sizes",
        lambda: ["fit", "--resume", str(tmp / "run"), "--set", "model.hidden=[{size: 7}]"],
    )
    yield "bad --set value", lambda: ["fit", "--data", str(good), "--set", "train.epochs=ten"]
    yield "--set list index out of range", lambda: ["fit", "--data", str(good), "--set", "model.hidden[3].size=5"]
    yield (
        "--run of a run without validation split",
        lambda: (
            CliRunner().invoke(
                main, fit[:-1] + [str(tmp / "noval"), "--data", str(good), "--set", "data.val_fraction=0"]
            ),
            ["evaluate", "--run", str(tmp / "noval")],
        )[1],
    )
    yield "bad --entries", lambda: ["gradcheck", "--entries", "some"]
    yield "--out holds a run (no --overwrite)", lambda: fit + ["--data", str(good)]
    yield "run name that climbs out of runs/", lambda: ["fit", "--data", str(good), "--set", "name=../../x"]

    def project():
        (tmp / "project" / "src").mkdir(parents=True, exist_ok=True)
        return ["fit", "--data", str(good), "--out", str(tmp / "project"), "--overwrite"]

    yield "--overwrite of a folder that is not a run", project

    def busy():
        lock = FolderLock(tmp / "run").acquire()  # as a running fit holds it
        return ["fit", "--resume", str(tmp / "run")], lock.release

    yield "run folder in use by another fit", busy
    yield (
        "--overwrite of a run, diverging (lr 1e30)",
        lambda: fit + ["--overwrite", "--data", str(good), "--epochs", "3", "--set", "train.optimizer.lr=1e30"],
    )
    yield from newer_cases(tmp, good, test_csv, predict)


def newer_cases(tmp: Path, good: Path, test_csv: Path, predict: list):
    """Round three's classes: huge numbers, checkpoints, links, special files, tune, ensembles."""
    import json

    yield (
        "a whole number too big for a float",
        lambda: ["fit", "--data", str(good), "--set", "train.optimizer.lr=1" + "0" * 400],
    )
    yield "--threads beyond any machine", lambda: ["fit", "--data", str(good), "--threads", "9" * 25]

    def tampered_checkpoint():
        run = tmp / "tampered"
        CliRunner().invoke(main, ["fit", "--quiet", "--epochs", "1", "--out", str(run), "--data", str(good)])
        checkpoint = run / "checkpoint.npz"
        with np.load(checkpoint, allow_pickle=False) as arrays:
            meta = json.loads(str(arrays["meta"]))
            kept = {name: arrays[name] for name in arrays.files if name != "meta"}
        meta["run"]["epoch"] = "one"
        np.savez(checkpoint, meta=np.array(json.dumps(meta)), **kept)
        return ["fit", "--resume", str(run), "--epochs", "2"]

    yield "checkpoint with a tampered run state", tampered_checkpoint

    def linked_lock():
        folder = tmp / "linked"
        folder.mkdir(exist_ok=True)
        (folder / ".lock").unlink(missing_ok=True)
        (folder / ".lock").symlink_to(tmp / "victim.txt")
        return ["fit", "--quiet", "--epochs", "1", "--data", str(good), "--out", str(folder)]

    yield "a run folder's .lock that is a symbolic link", linked_lock
    yield "--out a folder, not a file", lambda: predict + ["--model", str(tmp / "run" / "model.npz"), "--out", str(tmp)]
    yield (
        "gradcheck labels beyond the outputs",
        lambda: ["gradcheck", "--set", f"data.train={good}", "--set", "model.output_size=3"],
    )
    search = tmp / "search.yaml"

    def tune_case(space):
        def make():
            search.write_text(f"data: {{train: {good}, val_fraction: 0.3}}\ntune: {{space: {space}}}\n")
            return ["tune", "--config", str(search)]

        return make

    yield (
        "tune: two space keys naming one config key",
        tune_case("{train.epochs: {int: [1, 2]}, 'train.epochs ': {int: [1, 3]}}"),
    )
    yield "tune: train_rows that leave no validation row", tune_case("{data.train_rows: {int: [1, 30]}}")
    yield "tune --timeout nan", lambda: ["tune", "--config", str(search), "--timeout", "nan"]
    ensemble = tmp / "ensemble"

    def ensemble_case(damage):
        def make():
            if not ensemble.exists():
                CliRunner().invoke(
                    main,
                    ["fit", "--quiet", "--epochs", "1", "--data", str(good), "--seeds", "1,2", "--out", str(ensemble)],
                )
            damage()
            return ["predict", "--model", str(ensemble)] + predict[1:]

        return make

    yield (
        "ensemble: a member missing",
        ensemble_case(lambda: (ensemble / "seed-2" / "model.npz").rename(ensemble / "seed-2" / "moved.npz")),
    )
    yield (
        "ensemble: a member damaged",
        ensemble_case(
            lambda: (
                (ensemble / "seed-2" / "moved.npz").rename(ensemble / "seed-2" / "model.npz"),
                (ensemble / "seed-1" / "model.npz").write_bytes(b"PK\x03\x04 not whole"),
            )
        ),
    )
    yield (
        "ensemble: a manifest naming a folder outside",
        ensemble_case(
            lambda: (ensemble / "ensemble.yaml").write_text(
                "format: bp-train-ensemble/1\nmembers: [../../etc]\nconfig: {}\n"
            )
        ),
    )
    yield (
        "ensemble: a member of another input size",
        lambda: ["predict", "--model", str(tmp / "run" / "model.npz"), "--model", str(other_size(tmp))] + predict[1:],
    )
    yield "--seed with --seeds", lambda: ["fit", "--data", str(good), "--seeds", "1,2", "--seed", "3"]
    yield "--jobs without --seeds", lambda: ["fit", "--data", str(good), "--jobs", "2"]
    yield "evaluate --run of an ensemble", lambda: ["evaluate", "--run", str(ensemble)]
    yield "--seeds with a seed twice", lambda: ["fit", "--data", str(good), "--seeds", "0,0"]
    yield (
        "--seeds in digits Python reads but a person does not write",
        lambda: ["fit", "--data", str(good), "--seeds", "1_0"],
    )
    yield "explain network: a label outside 0-9", lambda: ["explain", "network", "--image", str(good), "--label", "12"]
    yield "explain network: --label without --image", lambda: ["explain", "network", "--label", "3"]
    yield "serve --host ''", lambda: ["serve", "--model", str(tmp / "run" / "model.npz"), "--host", ""]
    yield from round_four_cases(tmp, good, predict)


def round_four_cases(tmp: Path, good: Path, predict: list):
    """Round four's classes, one row each (the tests hold the other variants)."""
    import struct

    model = str(tmp / "run" / "model.npz")

    def declared_bomb():
        gif = tmp / "canvas.gif"  # 85 bytes: one pixel on a 6000x6000 canvas
        gif.write_bytes(
            b"GIF89a" + struct.pack("<HHBBB", 6000, 6000, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
        )
        return ["predict", "--model", model, "--image", str(gif)]

    yield "pictures: a GIF of 85 bytes declaring a 6000x6000 canvas", declared_bomb

    def lab_tiff():
        from PIL import Image

        Image.new("LAB", (40, 40)).save(tmp / "lab.tif")
        return ["predict", "--model", model, "--image", str(tmp / "lab.tif")]

    yield "pictures: a format Pillow opens but bp-train does not read (a LAB TIFF)", lab_tiff

    def save_over_picture():
        from PIL import Image, ImageDraw

        (tmp / "pics").mkdir(exist_ok=True)
        image = Image.new("L", (60, 60), 255)
        ImageDraw.Draw(image).line([(30, 5), (30, 55)], fill=0, width=6)
        image.save(tmp / "pics" / "seven.png")
        return [
            "predict",
            "--model",
            model,
            "--image",
            str(tmp / "pics" / "seven.png"),
            "--save-inputs",
            str(tmp / "pics"),
        ]

    yield "files: --save-inputs into the pictures' own folder", save_over_picture
    bad = tmp / "bad.csv"
    yield (
        "state before checks: fit --seeds with bad data (no ensemble folder is written)",
        lambda: (
            bad.write_text("label,pixel0\n1,2,3\n"),
            ["fit", "--data", str(bad), "--seeds", "1,2", "--out", str(tmp / "e")],
        )[1],
    )

    def negative_variance():
        from bp_train.config import build_network, load_config
        from bp_train.files.model import save_model

        config = load_config(None, ["model.hidden=[{size: 8, batchnorm: true}]"])
        network = build_network(config, seed=0)
        network.buffers["running_var1"][0] = -1.0
        save_model(tmp / "negative.npz", network, config.to_dict())
        return ["predict", "--model", str(tmp / "negative.npz")] + predict[1:]

    yield "values: a model whose BatchNorm variance is negative", negative_variance
    yield "bounds: --model given 101 times", lambda: ["predict", *["--model", model] * 101] + predict[1:]
    yield "bounds: exercise check --timeout nan", lambda: ["exercise", "check", "relu", "--timeout", "nan"]

    def fifo_model():
        os.mkfifo(tmp / "pipe")
        return ["predict", "--model", str(tmp / "pipe")] + predict[1:]

    yield "messages: a FIFO as --model", fifo_model

    def loop():
        os.symlink("loop", tmp / "loop")
        return ["fit", "--data", str(good), "--out", str(tmp / "loop")]

    yield "messages: --out a symbolic link in a loop", loop


def other_size(tmp: Path) -> Path:
    """A model file of a network that reads 400 values per digit."""
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(None, ["model.input_size=400", "model.input_shape=[1, 20, 20]", "model.hidden=[{size: 8}]"])
    path = tmp / "other-size.npz"
    save_model(path, build_network(config, seed=0), config.to_dict())
    return path


def main_table():
    print("| bad input | exit | message |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["BP_TRAIN_CACHE"] = str(tmp / "cache")
        for name, make in cases(tmp):
            args, after = make(), None
            if isinstance(args, tuple):  # (arguments, what to undo once they ran)
                args, after = args
            result = CliRunner().invoke(main, args, prog_name="bp-train")
            if after:
                after()
            message = (result.stderr or result.stdout).strip().replace(str(tmp) + "/", "").replace(str(tmp), ".")
            message = message.replace("|", "\\|").replace("\n", " ")
            print(f"| {name} | {result.exit_code} | `{message}` |")


if __name__ == "__main__":
    sys.exit(main_table())
