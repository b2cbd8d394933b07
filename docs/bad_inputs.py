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
        "YAML alias bomb": "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi")) + "model: {hidden: *i}\n",
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
    yield "model: contains pickled objects", model_case(
        lambda p: np.savez(p, meta=np.array([{"x": 1}], dtype=object)))
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
    yield "model: compressed (a small file declaring a huge array)", model_case(
        lambda p: np.savez_compressed(p, meta=np.array('{"format": "bp-train-model/1"}'), W1=np.zeros((2000, 2000))))
    yield "--out names the model file", lambda: ["predict", "--model", str(model), "--data", str(test_csv),
                                                 "--out", str(model)]
    yield "reversed --rows", lambda: ["show", str(good), "--rows", "5-2"]
    yield "--tol nan", lambda: ["gradcheck", "--tol", "nan"]
    yield "data of another input size", lambda: ["predict", "--model", str(model), "--data", str(small)]
    yield "output folder does not exist", lambda: ["predict", "--model", str(model), "--data", str(test_csv),
                                                   "--out", str(tmp / "no" / "such" / "sub.csv")]
    yield "output path is the input file", lambda: ["predict", "--model", str(model), "--data", str(test_csv),
                                                    "--out", str(test_csv)]
    yield "contradictory options", lambda: ["fit", "--resume", str(tmp / "run"), "--out", str(tmp / "other")]
    yield "resume with changed layer sizes", lambda: ["fit", "--resume", str(tmp / "run"), "--set",
                                                      "model.hidden=[{size: 7}]"]
    yield "bad --set value", lambda: ["fit", "--data", str(good), "--set", "train.epochs=ten"]
    yield "--set list index out of range", lambda: ["fit", "--data", str(good), "--set", "model.hidden[3].size=5"]
    yield "--run of a run without validation split", lambda: (
        CliRunner().invoke(main, fit[:-1] + [str(tmp / "noval"), "--data", str(good), "--set", "data.val_fraction=0"]),
        ["evaluate", "--run", str(tmp / "noval")])[1]
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
    yield "--overwrite of a run, diverging (lr 1e30)", lambda: fit + ["--overwrite", "--data", str(good), "--epochs", "3",
                                                                      "--set", "train.optimizer.lr=1e30"]


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
            result = CliRunner().invoke(main, args)
            if after:
                after()
            message = (result.stderr or result.stdout).strip().replace(str(tmp) + "/", "")
            message = message.replace("|", "\\|").replace("\n", " ")
            print(f"| {name} | {result.exit_code} | `{message}` |")


if __name__ == "__main__":
    sys.exit(main_table())
