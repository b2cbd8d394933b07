"""Nothing cryptic, nothing lost: any input loads or raises the project's own error; a killed or
disk-full save leaves the previous files whole."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bp_train.config import load_config
from bp_train.data.digits import read_csv
from bp_train.errors import BPTrainError
from bp_train.files.model import load_model

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=12)
)
keys = st.sampled_from(
    [
        "model",
        "data",
        "train",
        "hidden",
        "size",
        "activation",
        "epochs",
        "optimizer",
        "lr",
        "name",
        "batch_size",
        "init",
        "dtype",
        "seed",
        "dropout",
        "schedule",
    ]
) | st.text(max_size=6)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)


@FAST
@given(document=documents)
def test_any_yaml_document_loads_or_raises_a_config_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_config(path)
    except BPTrainError as error:
        assert str(path) in str(error)


@FAST
@given(text=st.text(max_size=300))
def test_any_text_as_a_config_loads_or_raises_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except BPTrainError:
        pass


cells = st.one_of(st.integers(-5, 300).map(str), st.sampled_from(["", "x", "1.5", "nan", " 7", "1e3", '"3"']))


@st.composite
def digit_csvs(draw):
    """Mostly well-formed digit CSVs with a few things broken: the interesting neighbourhood."""
    labelled = draw(st.booleans())
    header = (["label"] if labelled else []) + [f"pixel{i}" for i in range(784)]
    if draw(st.booleans()):
        header[draw(st.integers(0, len(header) - 1))] = draw(st.sampled_from(["pixel9999", "", "foo", "label"]))
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        row = [str(draw(st.integers(0, 9)))] if labelled else []
        row += ["0"] * 784
        for _ in range(draw(st.integers(0, 3))):
            row[draw(st.integers(0, len(row) - 1))] = draw(cells)
        if draw(st.integers(0, 9)) == 0:
            row = row[: draw(st.integers(0, len(row)))]
        rows.append(",".join(row))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join([",".join(header), *rows]) + draw(st.sampled_from(["", newline]))


@pytest.mark.slow
@FAST
@given(text=digit_csvs())
def test_any_nearly_valid_csv_loads_or_raises_a_data_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(text)
    try:
        digits = read_csv(path)
    except BPTrainError as error:
        assert str(path) in str(error)
    else:
        assert digits.images.shape[1] == 784 and digits.images.dtype == np.uint8


@FAST
@given(raw=st.binary(max_size=400))
def test_any_bytes_as_a_csv_load_or_raise_a_data_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_bytes(raw)
    try:
        read_csv(path)
    except BPTrainError:
        pass


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, pathlib
    import numpy as np
    import bp_train.files.store as store
    from bp_train.config import load_config
    from bp_train.training.trainer import fit

    run_dir, marker = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    real_savez, saves = np.savez, []

    def savez_then_hang(handle, **arrays):
        saves.append(1)
        if len(saves) >= 4 and "W1" in arrays:   # a model save after the first model exists
            handle.write(b"PK half a zip file")
            handle.flush()
            marker.write_text("saving")
            time.sleep(60)                           # the parent kills us here, mid-save
        real_savez(handle, **arrays)

    store.np.savez = savez_then_hang
    config = load_config(None, ["model.hidden=[{size: 8}]", "train.epochs=5", "data.train=" + sys.argv[3]])
    fit(config, run_dir, show_progress=False)
""")


def test_sigkill_while_saving_leaves_the_previous_model_intact(tmp_path, digits_csv):
    run_dir, marker = tmp_path / "run", tmp_path / "saving"
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(run_dir), str(marker), str(digits_csv)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), child.stderr.read().decode()
    child.send_signal(signal.SIGKILL)
    child.wait()
    network, _, meta = load_model(run_dir / "model.npz")  # the previous epoch's model, whole
    assert meta["epoch"] == 1 and np.isfinite(network.params["W1"]).all()
    # The next fit in the same folder clears the orphaned temporary file.
    assert run_cli("fit", "--resume", run_dir, "--quiet").exit_code == 0
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_full_disk_fails_cleanly_and_keeps_the_previous_files(tmp_path, tiny_config, monkeypatch):
    run_dir = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run_dir, "--quiet").exit_code == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}

    def disk_full(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    import bp_train.files.store

    monkeypatch.setattr(bp_train.files.store.np, "savez", disk_full)
    result = run_cli("fit", "--config", tiny_config, "--out", run_dir, "--overwrite", "--quiet")
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert result.stderr.count("\n") == 1
    after = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert after == before  # the previous run whole, no temporary file left behind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nor the overwrite's staging folder


def test_sigint_stops_fit_with_a_resumable_checkpoint_and_says_how_to_resume(tmp_path):
    from conftest import synthetic_digits, write_digit_csv

    images, labels = synthetic_digits(3000, seed=8)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "bp_train.cli",
        "fit",
        "--data",
        str(data),
        "--out",
        str(run_dir),
        "--epochs",
        "500",
        "--set",
        "model.hidden=[{size: 256}]",
        "--quiet",
    ]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert f"Resume with: bp-train fit --resume {run_dir}" in stderr and "Traceback" not in stderr
    saved = len(metrics.read_text().splitlines()) - 1
    assert 2 <= saved < 500
    result = run_cli("fit", "--resume", run_dir, "--epochs", str(saved + 1), "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert len(metrics.read_text().splitlines()) - 1 == saved + 1
