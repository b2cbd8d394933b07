"""Re-measure the figures of the README and docs pages from the code as it is, and copy them there.

Each section (results, ensembles, jobs, kaggle, classroom, own-digits, gradcheck, compare-speed, bench,
pytorch, gpu, tune, bad-inputs) runs the real `bp-train` command in a fresh process and writes its
output, with the date and the machine it ran on, to docs/figures.md between markers
`<!-- figures:NAME -->` and `<!-- /figures:NAME -->`. The README and the pages under docs/ hold the same
marked blocks, each block on one page; `--readme` (on by default) copies them over, and
tests/test_readme.py fails when a page and figures.md differ, so a change that moves a figure has to come
with the new figures.

    python docs/figures.py --data TRAIN_CSV --mnist MNIST_IDX_FOLDER            # everything (hours: ensembles)
    python docs/figures.py --data ... --only results,bench --rows default,deep  # some sections, rows
    python docs/figures.py --data ... --only gpu --torch-python python3          # on a machine with a GPU

`make figures` runs it on the data the project's machines have in ../shared/data.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures.md"
README = ROOT / "README.md"


def pages() -> list[Path]:
    """The README and the docs pages it links, which hold the marked blocks (figures.md aside)."""
    return [README, *sorted(p for p in (ROOT / "docs").glob("*.md") if p != FIGURES)]


BLOCK = re.compile(r"<!-- figures:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /figures:(?P=name) -->\n", re.S)
# Accuracy figures are made with a fixed thread count: OpenBLAS sums in another order with another count,
# and the same seed reproduces the same weights only with the same count.
THREADS = "2"

# config, data set ("kaggle": the Kaggle-format train.csv, validation split; "mnist": MNIST's 60,000 train
# rows, scored on t10k), the network in words
RESULTS = [
    ("default", "kaggle", "784-100-10 ReLU"),
    ("sigmoid", "kaggle", "784-100-10 sigmoid"),
    ("deep", "kaggle", "784-512-256-10 ReLU, dropout 0.3"),
    ("best", "mnist", "784-800-800-10 ReLU, dropout 0.2/0.5, Adam"),
    ("cnn", "kaggle", "conv 32@3x3, pool, conv 64@3x3, pool, 128, dropout 0.5"),
    ("best-cnn", "mnist", "conv 32@5x5, BN, pool, conv 64@5x5, BN, pool, 256, dropout 0.5"),
    ("best-augmented", "mnist", "784-800-800-10 ReLU, dropout 0.3, Adam, augmented digits"),
    ("best-cnn-augmented", "mnist", "best-cnn's network on augmented digits"),
]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory:.0f} GiB, Python {platform.python_version()}"


def stamp() -> str:
    return f"_Measured {datetime.date.today().isoformat()} on {machine()}._\n"


# Runs the CLI and, on the way out, reports the process's own peak resident memory in KiB: VmHWM, since
# getrusage's ru_maxrss survives exec and would report this script's peak if that were larger.
RUNNER = (
    "import re, sys\n"
    "from bp_train.cli import main\n"
    "try:\n    main(sys.argv[1:], prog_name='bp-train')\n"
    "finally:\n    status = open('/proc/self/status').read()\n"
    "    print('PEAK_KIB', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
)


def bp_train(*args, cwd=None) -> tuple[str, float, float]:
    """Run `bp-train ARGS` in a fresh process: (stdout, wall seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"bp-train {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}")
    peak = re.findall(r"PEAK_KIB (\d+)", done.stderr)
    return done.stdout, seconds, int(peak[-1]) / 1024 if peak else float("nan")


def human_time(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.0f} s"


# --- sections ----------------------------------------------------------------------------------------------


def results(args, only_rows: set[str] | None, previous: str | None) -> str:
    rows = _previous_rows(previous)
    work = Path(tempfile.mkdtemp(prefix="bp-train-figures-"))
    mnist_csv = None
    for name, dataset, network in RESULTS:
        if only_rows and name not in only_rows:
            continue
        config = ROOT / "configs" / f"{name}.yaml"
        run = work / name
        if dataset == "kaggle":
            out, seconds, peak = run_fit(config, args.data, run)
            summary = json.loads(out)
            trained_on = "Kaggle-format `train.csv` (42,000 rows: 37,800 train, 4,200 validation)"
            accuracy = f"{summary['val_accuracy']:.2%} validation"
        else:
            if mnist_csv is None:
                mnist_csv = _mnist_csvs(args.mnist, work)
            out, seconds, peak = run_fit(config, mnist_csv["train"], run)
            summary = json.loads(out)
            report, _, _ = bp_train(
                "evaluate", "--model", run / "model.npz", "--data", mnist_csv["test"], "--json", "--threads", THREADS
            )
            trained_on = "MNIST train (60,000 rows)"
            accuracy = f"{json.loads(report)['accuracy']:.2%} on MNIST t10k"
        if dataset == "kaggle" and args.mnist:
            accuracy += f"; {kaggle_test_score(args, run / 'model.npz', work):.2%} on the Kaggle-format test.csv"
        rows[name] = (
            f"| `{name}.yaml` | {trained_on} | {network} | {summary['epochs']} | "
            f"{human_time(seconds)} | {peak:,.0f} MiB | **{accuracy}** |"
        )
    header = (
        "| config | trained on | network | epochs | `fit` time | peak memory | accuracy |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    order = [name for name, _, _ in RESULTS] + sorted(set(rows) - {n for n, _, _ in RESULTS})
    return stamp() + "\n" + header + "".join(rows[n] + "\n" for n in order if n in rows)


def run_fit(config: Path, data, run: Path):
    return bp_train("fit", "--config", config, "--data", data, "--out", run, "--quiet", "--json", "--threads", THREADS)


def _mnist_csvs(folder, work: Path) -> dict:
    """MNIST's IDX files as labelled Kaggle-style CSVs: {"train": 60,000 rows, "test": t10k's 10,000}."""
    if not folder:
        raise SystemExit("the results section needs --mnist FOLDER (the four MNIST IDX .gz files)")
    paths = {"train": work / "mnist-train.csv", "test": work / "mnist-t10k.csv"}
    for part, prefix in (("train", "train"), ("test", "t10k")):
        bp_train(
            "data",
            "convert",
            "--images",
            Path(folder) / f"{prefix}-images-idx3-ubyte.gz",
            "--labels",
            Path(folder) / f"{prefix}-labels-idx1-ubyte.gz",
            "--out",
            paths[part],
        )
    return paths


def kaggle_test_score(args, model: Path, work: Path) -> float:
    """Predict the Kaggle-format test.csv beside --data, as a Kaggle entrant would, and score the submission."""
    test_csv = Path(args.data).with_name(Path(args.data).name.replace("train", "test"))
    submission = work / f"{model.parent.name}-submission.csv"
    bp_train("predict", "--model", model, "--data", test_csv, "--out", submission, "--threads", THREADS)
    return _score_submission(args, submission, test_csv)


def _score_submission(args, submission: Path, test_csv: Path) -> float:
    """The share of a submission's labels that are right. The replica's test labels are not published, but
    its images are MNIST's: each test image's label is looked up by its pixels (data.row_hashes) among
    MNIST's 70,000 labelled images."""
    import numpy as np

    from bp_train.data.digits import load_digits
    from bp_train.data.fingerprints import row_hashes
    from bp_train.data.mnist import read_pair

    known = {}
    for prefix in ("train", "t10k"):
        images, labels = read_pair(
            Path(args.mnist) / f"{prefix}-images-idx3-ubyte.gz", Path(args.mnist) / f"{prefix}-labels-idx1-ubyte.gz"
        )
        known.update(zip(row_hashes(images.reshape(len(images), -1)).tolist(), labels.tolist()))
    truth = np.array([known[h] for h in row_hashes(load_digits(test_csv).images).tolist()])
    predicted = np.loadtxt(submission, delimiter=",", skiprows=1, dtype=int)[:, 1]
    return float(np.mean(predicted == truth))


def _previous_rows(previous: str | None) -> dict[str, str]:
    rows = {}
    for line in (previous or "").splitlines():
        match = re.match(r"\| `([\w-]+)\.yaml` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def command_section(*args) -> str:
    out, _, _ = bp_train(*args, cwd=ROOT)
    shown = " ".join(str(a) for a in args).replace(str(ROOT.parent) + "/", "../")
    return (
        stamp() + "\n```\n$ bp-train " + shown + "\n" + out.replace(str(ROOT.parent) + "/", "../").rstrip() + "\n```\n"
    )


def gradcheck(args, *_):
    return command_section("gradcheck", "--config", "configs/default.yaml", "--set", f"data.train={args.data}")


def compare_speed(args, *_):
    return command_section(
        "compare-speed",
        "--config",
        "configs/default.yaml",
        "--sizes",
        "10,50,100,200",
        "--set",
        f"data.train={args.data}",
    )


def bench(args, *_):
    configs = [
        a
        for name in ("default", "deep", "mlp-800-800", "best", "best-augmented", "cnn", "fast-cnn")
        for a in ("--config", f"configs/{name}.yaml")
    ]
    return command_section("bench", "--data", args.data, "--busy", "--profile", *configs)


def pytorch(args, *_):
    """bp-train's epoch time against PyTorch's CPU on the same network, batch, optimizer and data, the two
    interleaved (A B A B) so that the machine's drift hits both; PyTorch runs from its own environment."""
    if not args.torch_python:
        raise SystemExit("the pytorch section needs --torch-python PATH (a Python with torch, numpy, pandas)")
    lines = [
        "| network | bp-train s/epoch | PyTorch s/epoch | ratio (bp-train / PyTorch) | bp-train / matmul peak |",
        "|---|---|---|---|---|",
    ]
    work = Path(tempfile.mkdtemp(prefix="bp-train-pytorch-"))
    for name in ("default", "mlp-800-800", "cnn", "fast-cnn"):
        ours, theirs, peak = [], [], []
        config = _same_work_as_the_reference(ROOT / "configs" / f"{name}.yaml", work)
        optimizer = _reference_optimizer(config)
        for _ in range(2):
            out, _, _ = bp_train(
                "bench", "--data", args.data, "--config", config, "--epochs", "3", "--threads", THREADS, "--json"
            )
            figures_ = json.loads(out)["training"][0]
            ours.append(figures_["seconds_per_epoch"])
            peak.append(figures_["ratio"])
            done = subprocess.run(
                [
                    args.torch_python,
                    str(ROOT / "docs" / "torch_reference.py"),
                    "--data",
                    args.data,
                    "--network",
                    name,
                    "--epochs",
                    "3",
                    "--threads",
                    THREADS,
                    *optimizer,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            theirs.append(json.loads(done.stdout)["seconds_per_epoch"])
        ratios = [a / b for a, b in zip(ours, theirs)]
        lines.append(
            f"| `{name}.yaml` | {', '.join(f'{v:.2f}' for v in ours)} | {', '.join(f'{v:.2f}' for v in theirs)} "
            f"| {', '.join(f'{v:.2f}' for v in ratios)} | {', '.join(f'{v:.2f}' for v in peak)} |"
        )
    version = subprocess.run(
        [args.torch_python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return (
        stamp() + f"\nPyTorch {version} on the CPU, {THREADS} threads each, batch 100, each config's optimizer "
        "(momentum or Adam, its rate and weight decay), the 37,800 training rows "
        "of the Kaggle-format file, no augmentation on either side; each cell lists the two interleaved rounds, "
        "and the last column bp-train's own GFLOP/s over this machine's float32 matmul rate in the same run.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def _reference_optimizer(config: Path) -> list[str]:
    """docs/torch_reference.py's optimizer arguments for the config's own optimizer."""
    import yaml

    train = yaml.safe_load(config.read_text())["train"]
    chosen = train["optimizer"]
    if chosen["name"] not in ("adam", "momentum"):
        raise SystemExit(f"{config.name}: the PyTorch reference knows adam and momentum, not {chosen['name']}")
    return [
        "--optimizer",
        chosen["name"],
        "--lr",
        str(chosen["lr"]),
        "--momentum",
        str(chosen.get("momentum", 0.9)),
        "--weight-decay",
        str(train.get("weight_decay", 0.0)),
    ]


def _same_work_as_the_reference(config: Path, work: Path) -> Path:
    """The config as docs/torch_reference.py trains it: 90% of the rows, no augmentation (which the
    reference does not do); the network, batch and optimizer as they are."""
    import yaml

    raw = yaml.safe_load(config.read_text())
    raw.setdefault("data", {})["val_fraction"] = 0.1
    raw.setdefault("train", {}).pop("augment", None)
    copy = work / config.name
    copy.write_text(yaml.safe_dump(raw))
    return copy


def gpu(args, *_):
    """Run on a machine with an NVIDIA GPU (CuPy and, for the comparison, PyTorch installed): `bench --device
    cuda` for the shipped configs, cnn.yaml trained on the GPU, and PyTorch on the same GPU, network, batch
    and data, interleaved with bp-train (A B A B)."""
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    configs = [a for c in ("default", "deep", "mlp-800-800", "best", "cnn") for a in ("--config", f"configs/{c}.yaml")]
    bench_text = command_section("bench", "--device", "cuda", "--data", args.data, *configs).split("\n", 1)[1]
    work = Path(tempfile.mkdtemp(prefix="bp-train-gpu-"))
    out, seconds, _ = bp_train(
        "fit",
        "--config",
        ROOT / "configs" / "cnn.yaml",
        "--data",
        args.data,
        "--device",
        "cuda",
        "--out",
        work / "cnn",
        "--quiet",
        "--json",
    )
    fitted = json.loads(out)
    ours, theirs = [], []
    for _ in range(2):
        out, _, _ = bp_train(
            "bench",
            "--device",
            "cuda",
            "--data",
            args.data,
            "--config",
            ROOT / "configs" / "cnn.yaml",
            "--epochs",
            "3",
            "--json",
        )
        ours.append(json.loads(out)["training"][0]["seconds_per_epoch"])
        done = subprocess.run(
            [
                args.torch_python or sys.executable,
                str(ROOT / "docs" / "torch_reference.py"),
                "--data",
                args.data,
                "--network",
                "cnn",
                "--epochs",
                "3",
                "--device",
                "cuda",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        theirs.append(json.loads(done.stdout)["seconds_per_epoch"])
    ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs))
    return (
        stamp() + f"\nGPU: {name}, CuPy {cupy.__version__}.\n\n"
        f"`bp-train fit --config configs/cnn.yaml --device cuda` on the Kaggle-format train.csv: "
        f"{fitted['val_accuracy']:.2%} validation accuracy in {human_time(seconds)} (the whole command; "
        f"{fitted['train_seconds']:.0f} s in the epochs).\n\n"
        f"An epoch of `cnn.yaml` (37,800 rows, batch 100, Adam): bp-train {', '.join(f'{v:.2f}' for v in ours)} s, "
        f"PyTorch {', '.join(f'{v:.2f}' for v in theirs)} s on the same GPU (two interleaved rounds); "
        f"bp-train / PyTorch = {ratios}.\n\n" + bench_text
    )


def tune_search(args, *_):
    """`tune` of configs/tune-default.yaml in a fresh folder, and the default config it searches around, fitted
    in the same run for the comparison."""
    work = Path(tempfile.mkdtemp(prefix="bp-train-tune-"))
    reference, _, _ = bp_train(
        "fit",
        "--config",
        ROOT / "configs" / "default.yaml",
        "--data",
        args.data,
        "--out",
        work / "default",
        "--quiet",
        "--json",
        "--threads",
        THREADS,
    )
    out, seconds, peak = bp_train(
        "tune",
        "--config",
        ROOT / "configs" / "tune-default.yaml",
        "--data",
        args.data,
        "--quiet",
        "--threads",
        THREADS,
        cwd=work,
    )
    with open(work / "runs" / "tune-default" / "tune" / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    states = {state: sum(r["state"] == state for r in trials) for state in ("complete", "pruned", "failed")}
    lines = out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("trial  ")) : -1]
    best = max(float(r["val_accuracy"]) for r in trials if r["state"] == "complete")
    return (
        stamp() + f"\n`bp-train tune --config configs/tune-default.yaml` on the Kaggle-format train.csv, "
        f"{THREADS} threads: {len(trials)} trials ({states['complete']} complete, {states['pruned']} pruned, "
        f"{states['failed']} failed) in {human_time(seconds)}, peak {peak:,.0f} MiB. Best validation accuracy "
        f"{best:.2%}, against {json.loads(reference)['val_accuracy']:.2%} for `default.yaml` fitted in the same "
        "run. The five best trials:\n\n```\n" + "\n".join(table) + "\n```\n"
    )


def bad_inputs(args, *_):
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "bad_inputs.py")], check=True, text=True, capture_output=True
    ).stdout
    return out


def classroom(args, *_):
    """The chapter-6 experiments with two seeds each (their compare.png copied to docs/images), the
    vanishing-gradient demo and a graph drawing: the numbers behind the pictures the teaching pages show."""
    import shutil

    images = ROOT / "docs" / "images"
    parts = [stamp()]
    with tempfile.TemporaryDirectory() as folder:
        for name in ("optimizers", "init", "batchnorm", "dropout"):
            out, seconds, _ = bp_train(
                "compare", name, "--data", args.data, "--out", Path(folder) / name, "--json", "--threads", THREADS
            )
            summary = json.loads(out)
            shutil.copyfile(Path(folder) / name / "compare.png", images / f"compare-{name}.png")
            parts.append(
                f"\n**`make compare-{name}`** ({summary['epochs']} epochs, two seeds, "
                f"{human_time(seconds)}): {summary['caption']}.\n\n"
                "| variant | validation, seed 0 | seed 1 | spread | training - validation |\n|---|---|---|---|---|\n"
            )
            for label, figures_ in summary["variants"].items():
                finals = [f"{r['final_val']:.2%}" for r in figures_["runs"]]
                parts.append(
                    f"| {label} | {' | '.join(finals)} | {figures_['spread_val']:.2%} | {figures_['mean_gap']:.2%} |\n"
                )
    bp_train("explain", "apple-orange", "--png", images / "explain-apple-orange.png", cwd=ROOT)
    out, _, _ = bp_train(
        "explain",
        "network",
        "--config",
        "configs/deep-sigmoid.yaml",
        "--config",
        "configs/deep-relu.yaml",
        "--set",
        f"data.train={args.data}",
        "--png",
        images / "vanishing.png",
        cwd=ROOT,
    )
    ratios = [line.strip() for line in out.splitlines() if line.startswith("  deep-")]
    parts.append(
        "\n`bp-train explain network --config configs/deep-sigmoid.yaml --config configs/deep-relu.yaml`:"
        "\n\n" + "".join(f"- {line.split(' (')[0]}: {line.split(': ', 1)[1]}\n" for line in ratios)
    )
    return "".join(parts)


def own_digits(args, *_):
    """The README's "your own digits" figures: t10k digits drawn as people draw them (docs/digit_styles.py),
    read by fast-cnn.yaml's network and by default.yaml's MLP, both trained on MNIST's 60,000, and the
    draw-a-digit server's latency (the CNN answering)."""
    import http.client
    import importlib.util
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    from bp_train.data.mnist import read_pair

    spec = importlib.util.spec_from_file_location("digit_styles", ROOT / "docs" / "digit_styles.py")
    styles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(styles)
    mnist = Path(args.mnist)
    images, labels = read_pair(mnist / "t10k-images-idx3-ubyte.gz", mnist / "t10k-labels-idx1-ubyte.gz")
    with tempfile.TemporaryDirectory() as folder:
        train = Path(folder) / "train.csv"
        bp_train(
            "data",
            "convert",
            "--images",
            mnist / "train-images-idx3-ubyte.gz",
            "--labels",
            mnist / "train-labels-idx1-ubyte.gz",
            "--out",
            train,
        )
        figures = {}
        for config in ("fast-cnn", "default"):
            bp_train(
                "fit",
                "--config",
                ROOT / "configs" / f"{config}.yaml",
                "--data",
                train,
                "--out",
                Path(folder) / config,
                "--set",
                "data.val_fraction=0",
                "--quiet",
                "--threads",
                THREADS,
            )
            figures[config] = styles.accuracies(Path(folder) / config / "model.npz", images[:1000], labels[:1000])
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bp_train.cli",
                "serve",
                "--model",
                str(Path(folder) / "fast-cnn" / "model.npz"),
                "--port",
                "0",
            ],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        port = int(server.stderr.readline().split(":")[2].split("/")[0])
        body = styles.canvas(images[0].reshape(28, 28), None)

        def timed(_):
            start = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/api/predict", body=body)
            ok = connection.getresponse().status == 200
            connection.close()
            return ok, time.perf_counter() - start

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(timed, range(200)))
        server.terminate()
        server.wait()
    cnn, mlp = figures["fast-cnn"], figures["default"]
    lines = [
        stamp(),
        "\n| the same 1,000 t10k digits | fast-cnn.yaml, prepared as MNIST's | fast-cnn.yaml, simply "
        "resized to 28x28 | default.yaml (MLP), prepared as MNIST's |\n",
        "|---|---|---|---|\n",
        f"| as CSV rows (the data set itself) | **{cnn['csv rows'][0]:.1%}** | | {mlp['csv rows'][0]:.1%} |\n",
    ]
    lines += [
        f"| {style} | **{cnn[style][0]:.1%}** | {cnn[style][1]:.1%} | {mlp[style][0]:.1%} |\n"
        for style in styles.STYLES
    ]
    seconds = sorted(s for _, s in answers)
    lines.append(
        f"\n`bp-train serve` with the fast-cnn model: 200 requests (a 280x280 canvas PNG each) from 4 "
        f"concurrent clients on loopback, {sum(ok for ok, _ in answers)} answered 200; latency median "
        f"{statistics.median(seconds) * 1000:.0f} ms, 95th percentile "
        f"{seconds[int(0.95 * len(seconds)) - 1] * 1000:.0f} ms (the prediction and its saliency map "
        "included; one request at a time uses the network).\n"
    )
    return "".join(lines)


FAST_SEEDS = "0,1,2,3,4"


def _evaluate(*args) -> dict:
    out, _, _ = bp_train("evaluate", *args, "--json", "--threads", THREADS)
    return json.loads(out)


def ensembles(args, *_):
    """configs/fast-cnn.yaml on MNIST's 60,000, one member per seed (`fit --seeds`), each member and the
    ensemble scored on t10k, without and with TTA; single networks as mean +- standard deviation."""
    import statistics

    work = Path(tempfile.mkdtemp(prefix="bp-train-ensembles-"))
    mnist_csv = _mnist_csvs(args.mnist, work)
    folder = work / "fast-cnn-ensemble"
    out, seconds, peak = bp_train(
        "fit",
        "--config",
        ROOT / "configs" / "fast-cnn.yaml",
        "--data",
        mnist_csv["train"],
        "--seeds",
        FAST_SEEDS,
        "--out",
        folder,
        "--quiet",
        "--json",
        "--threads",
        THREADS,
    )
    members = json.loads(out)["members"]
    plain = _evaluate("--model", folder, "--data", mnist_csv["test"])
    tta = _evaluate("--model", folder, "--data", mnist_csv["test"], "--tta")
    first3 = [a for m in members[:3] for a in ("--model", m["run_dir"])]
    three = _evaluate(*first3, "--data", mnist_csv["test"])
    three_tta = _evaluate(*first3, "--data", mnist_csv["test"], "--tta")

    def spread(result, count=None):
        scores = [m["accuracy"] for m in result["members"]][:count]
        return f"{statistics.mean(scores):.2%} +- {statistics.stdev(scores):.2%}"

    times = [m["seconds"] for m in members]
    lines = [
        stamp(),
        f"\n`configs/fast-cnn.yaml` on MNIST's 60,000 training rows, scored on t10k; `bp-train fit --seeds "
        f"{FAST_SEEDS}` took {human_time(seconds)} in all (peak memory {peak:,.0f} MiB).\n\n",
        "| seed | `fit` time | t10k accuracy | with `--tta` |\n|---|---|---|---|\n",
    ]
    lines += [
        f"| {m['seed']} | {human_time(t)} | {p['accuracy']:.2%} | {q['accuracy']:.2%} |\n"
        for m, t, p, q in zip(members, times, plain["members"], tta["members"])
    ]
    lines += [
        f"| one network, mean +- std of seeds 0-2 | {human_time(statistics.mean(times[:3]))} | "
        f"**{spread(plain, 3)}** | {spread(tta, 3)} |\n",
        f"| one network, mean +- std of all {len(members)} | {human_time(statistics.mean(times))} | "
        f"{spread(plain)} | {spread(tta)} |\n",
        f"| ensemble of seeds 0-2 (probabilities averaged) | {human_time(sum(times[:3]))} | "
        f"{three['accuracy']:.2%} | {three_tta['accuracy']:.2%} |\n",
        f"| ensemble of all {len(members)} | {human_time(sum(times))} | **{plain['accuracy']:.2%}** | "
        f"**{tta['accuracy']:.2%}** |\n",
    ]
    return "".join(lines)


JOBS_ROWS, JOBS_EPOCHS, JOBS_PAIRS = 12_000, 2, 3


def jobs(args, *_):
    """`fit --seeds 0,1 --jobs 2` (two members at once, one BLAS thread each) against `fit --seeds 0,1` (in
    turn, two threads each) on configs/fast-cnn.yaml, interleaved A B A B so that the machine's drift falls
    on both alike: the median of the pairs' ratios."""
    import statistics

    work = Path(tempfile.mkdtemp(prefix="bp-train-jobs-"))
    common = [
        "fit",
        "--config",
        ROOT / "configs" / "fast-cnn.yaml",
        "--data",
        args.data,
        "--seeds",
        "0,1",
        "--train-rows",
        JOBS_ROWS,
        "--epochs",
        JOBS_EPOCHS,
        "--quiet",
        "--threads",
        THREADS,
    ]
    side, turn = [], []
    for pair in range(JOBS_PAIRS):
        side.append(bp_train(*common, "--jobs", "2", "--out", work / f"side-{pair}")[1])
        turn.append(bp_train(*common, "--out", work / f"turn-{pair}")[1])
    ratio = statistics.median(t / s for s, t in zip(side, turn))
    return (
        stamp() + f"\nTwo members of `fast-cnn.yaml` ({JOBS_ROWS:,} rows of the replica's `train.csv`, "
        f"{JOBS_EPOCHS} epochs each), {JOBS_PAIRS} times each way, interleaved: `fit --seeds 0,1 --jobs 2` took "
        f"{statistics.median(side):.0f} s (median), `fit --seeds 0,1` in turn {statistics.median(turn):.0f} s: "
        f"**{ratio:.2f}x** as fast side by side, start-up included.\n"
    )


def kaggle(args, *_):
    """`make kaggle` from a fresh clone of this checkout, on the Kaggle-format files beside --data; its
    submission.csv checked for the format Kaggle takes and scored against the test rows' labels (looked up
    among MNIST's 70,000 by pixels, as kaggle_test_score does)."""
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="bp-train-kaggle-"))
    clone = work / "bp-train"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    test_csv = Path(args.data).with_name(Path(args.data).name.replace("train", "test"))
    start = time.perf_counter()
    done = subprocess.run(
        ["make", "kaggle", f"TRAIN_CSV={args.data}", f"TEST_CSV={test_csv}"], cwd=clone, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"make kaggle failed ({done.returncode}):\n{done.stderr[-3000:]}")
    submission = np.loadtxt(clone / "submission.csv", delimiter=",", skiprows=1, dtype=int)
    header = (clone / "submission.csv").read_text().splitlines()[0]
    assert header == "ImageId,Label" and len(submission) == 28_000, "not the submission Kaggle takes"
    assert (submission[:, 0] == np.arange(1, 28_001)).all() and set(submission[:, 1]) <= set(range(10))
    score = _score_submission(args, clone / "submission.csv", test_csv)
    seeds, config, at_once = subprocess.run(
        ["make", "-s", "-f", "Makefile", "-f", "-", "settings"],
        cwd=clone,
        text=True,
        capture_output=True,
        input="settings:\n\t@echo $(SEEDS) $(notdir $(KAGGLE_CONFIG)) $(JOBS)\n",
    ).stdout.split()
    return (
        stamp() + f"\n`make kaggle` in a fresh clone (install included; {seeds.count(',') + 1} members of "
        f"`{config}`, {at_once} at a time, trained on the 42,000 rows of the Kaggle-format `train.csv`, then "
        f"`predict --tta` on `test.csv`) took {human_time(seconds)} and wrote a `submission.csv` of 28,000 rows, `ImageId,Label`, "
        f"which scores **{score:.2%}** on the 28,000 test rows.\n"
    )


SECTIONS = {
    "results": results,
    "ensembles": ensembles,
    "jobs": jobs,
    "kaggle": kaggle,
    "classroom": classroom,
    "own-digits": own_digits,
    "gradcheck": gradcheck,
    "compare-speed": compare_speed,
    "bench": bench,
    "pytorch": pytorch,
    "gpu": gpu,
    "tune": tune_search,
    "bad-inputs": bad_inputs,
}


# --- the files ---------------------------------------------------------------------------------------------


def blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


def replace_blocks(text: str, new: dict[str, str]) -> str:
    def swap(match):
        name = match.group("name")
        body = new.get(name, match.group("body"))
        return f"<!-- figures:{name} -->\n{body}<!-- /figures:{name} -->\n"

    return BLOCK.sub(swap, text)


def write_figures(sections: dict[str, str]) -> None:
    parts = [
        "# Figures\n\nGenerated by `python docs/figures.py` (`make figures`); the README's marked blocks are "
        "copies of these. Do not edit by hand.\n"
    ]
    for name in SECTIONS:
        if name in sections:
            parts.append(f"\n## {name}\n\n<!-- figures:{name} -->\n{sections[name]}<!-- /figures:{name} -->\n")
    FIGURES.write_text("".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Kaggle-format train.csv(.gz)")
    parser.add_argument("--mnist", help="folder with the four MNIST IDX .gz files (for the results of best*.yaml)")
    parser.add_argument(
        "--torch-python", help="a Python with PyTorch, for the pytorch section (docs/torch_reference.py)"
    )
    parser.add_argument("--only", help="comma-separated sections to measure (default: all): " + ", ".join(SECTIONS))
    parser.add_argument("--rows", help="comma-separated configs of the results table to re-measure (default: all)")
    parser.add_argument(
        "--no-readme", dest="readme", action="store_false", help="leave README.md and the docs pages alone"
    )
    args = parser.parse_args()
    args.data = str(Path(args.data).resolve())
    current = blocks(FIGURES.read_text()) if FIGURES.is_file() else {}
    chosen = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = chosen - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]!r}; choose from {', '.join(SECTIONS)}")
    rows = set(args.rows.split(",")) if args.rows else None
    if not args.torch_python and not args.only:
        chosen.discard("pytorch")
        print("keeping the pytorch section as it is (give --torch-python to re-measure it)", file=sys.stderr)
    if not args.only:
        chosen.discard("gpu")
        print("keeping the gpu section as it is (measure it on a GPU machine with --only gpu)", file=sys.stderr)
    for name in SECTIONS:
        if name in chosen:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            current[name] = SECTIONS[name](args, rows if name == "results" else None, current.get(name))
    write_figures(current)
    if args.readme:
        for page in pages():
            page.write_text(replace_blocks(page.read_text(), current))
    print(f"wrote {FIGURES}" + (" and updated the README and docs pages" if args.readme else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
