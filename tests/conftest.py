"""Shared test helpers: small synthetic digit files, an isolated cache, and the real data when present."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
REPLICA_TRAIN = SHARED / "kaggle-replica" / "train.csv.gz"
REPLICA_TEST = SHARED / "kaggle-replica" / "test.csv.gz"
MNIST = SHARED / "mnist"

needs_shared = pytest.mark.skipif(
    not REPLICA_TRAIN.is_file() or not (MNIST / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"real MNIST data not found at {SHARED} (present in CI)",
)


def pytest_configure(config):
    """`make test` runs the suite in two worker processes (pytest-xdist), one per core of this project's
    machines. Two workers each running BLAS on two threads would put four busy threads on two cores, and
    OpenBLAS's threads spin while they wait: then every product of both slows down severalfold. So each
    worker starts with one BLAS thread, and so does every command it runs (BP_TRAIN_THREADS=1, which also
    spares each command the fifth of a second it would spend measuring the load); a test that asks for
    more (`--threads 2`) still gets them, and the tests of the automatic choice unset it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        os.environ["BP_TRAIN_THREADS"] = "1"


def pytest_collection_modifyitems(config, items):
    """The slowest tests first (marked `slow`), so that the workers of `make test`, each taking the next
    test when it is free, do not end with one of them alone on a long test; the others keep their order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


_shared_parses: list[Path] = []


def shared_parses(tmp_path_factory) -> list[Path]:
    """The cache files of the replica's train.csv.gz and test.csv.gz, parsed once per test process (each
    parse takes seconds, and a dozen tests read these files)."""
    if not _shared_parses:
        from bp_train.data.digits import load_digits

        folder = tmp_path_factory.mktemp("shared-parses")
        previous = os.environ.get("BP_TRAIN_CACHE")
        os.environ["BP_TRAIN_CACHE"] = str(folder)
        try:
            for path in (REPLICA_TRAIN, REPLICA_TEST):
                load_digits(path)
        finally:
            if previous is None:
                del os.environ["BP_TRAIN_CACHE"]
            else:
                os.environ["BP_TRAIN_CACHE"] = previous
        _shared_parses.extend(sorted(folder.iterdir()))
    return _shared_parses


@pytest.fixture(autouse=True)
def isolated_cache(request, tmp_path_factory, monkeypatch):
    """Every test gets its own parsed-CSV cache folder, so none reads another's (or the user's) cache.
    A test of a module that reads the shared replica finds the replica's parse there already: a cache
    file is keyed to its CSV's path, size and modification time, so it is the very file the test's first
    load would have written (hard-linked: replaced, never written into, when a load rewrites it)."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BP_TRAIN_CACHE", str(folder))
    if REPLICA_TRAIN.is_file() and REPLICA_TEST.is_file() and hasattr(request.module, "REPLICA_TRAIN"):
        for parsed in shared_parses(tmp_path_factory):
            try:
                os.link(parsed, folder / parsed.name)
            except OSError:
                shutil.copyfile(parsed, folder / parsed.name)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Easy 'digits': class k lights up horizontal band k of the 28x28 image, plus noise. Learnable in a
    few epochs by any working network, hopeless for a broken one."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28))
    for k in range(10):
        rows = labels == k
        images[rows, 2 + 2 * k : 4 + 2 * k, 4:24] += 180
    return np.clip(images, 0, 255).reshape(n, 784).astype(np.uint8), labels.astype(np.uint8)


def write_digit_csv(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    first_pixel: int = 0,
    newline: str = "\n",
    bom: bool = False,
) -> Path:
    header = [f"pixel{i + first_pixel}" for i in range(images.shape[1])]
    lines = []
    if labels is not None:
        header = ["label"] + header
        lines = [",".join(map(str, [lab, *row])) for lab, row in zip(labels, images)]
    else:
        lines = [",".join(map(str, row)) for row in images]
    text = newline.join([",".join(header), *lines]) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


@pytest.fixture
def digits_csv(tmp_path) -> Path:
    images, labels = synthetic_digits(600)
    return write_digit_csv(tmp_path / "train.csv", images, labels)


@pytest.fixture
def tiny_config(tmp_path, digits_csv) -> Path:
    """A quick config over the synthetic CSV."""
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""
name: tiny
model: {{hidden: [{{size: 32, activation: relu}}]}}
data: {{train: {digits_csv}, val_fraction: 0.2}}
train: {{epochs: 3, batch_size: 50, optimizer: {{name: momentum, lr: 0.05}}, seed: 3}}
""")
    return path


def run_cli(*args, cwd=None):
    """Run the CLI in-process; return click's Result (exit_code, output, stdout/stderr)."""
    from click.testing import CliRunner

    from bp_train.cli import main

    runner = CliRunner()
    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(old)


# Runs the CLI in a fresh process and reports its own peak resident memory on the way out: VmHWM, since
# getrusage's ru_maxrss survives exec and would report the parent's (pytest's) peak.
RUNNER = (
    "import re, sys\nfrom bp_train.cli import main\ntry:\n    main(sys.argv[1:], prog_name='bp-train')\n"
    "finally:\n    status = open('/proc/self/status').read()\n"
    "    print('PEAK_KIB', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
)


def run_measured(*args, cwd=None, timeout=60):
    """(exit code, stderr without the peak line, seconds, peak MiB) of `bp-train ARGS` in a fresh process."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    peak = int(re.findall(r"PEAK_KIB (\d+)", done.stderr)[-1]) / 1024
    stderr = re.sub(r"PEAK_KIB \d+\n?", "", done.stderr)
    return done.returncode, stderr, time.monotonic() - start, peak
