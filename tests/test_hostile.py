"""Hostile input, class by class: small files that would eat memory or time, outputs that would overwrite
inputs, tracebacks, quietly wrong answers, interrupts and full disks. Each case runs the real CLI and
asserts exit code 2 (or 130, or a quiet 0), one line, and nothing clobbered."""

import errno
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT, run_cli, run_measured, synthetic_digits, write_digit_csv


def assert_bounded(code, stderr, seconds, peak, message):
    assert code == 2, stderr
    assert message in stderr and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert seconds < 10 and peak < 500, (seconds, peak)


# --- 1. resource exhaustion from small inputs -------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_quickly_in_little_memory(tmp_path):
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for i, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    lines.append("model: {hidden: *i}")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2000
    assert_bounded(*run_measured("fit", "--config", bomb), "expands to more than 100,000 values")


def test_yaml_nested_hundreds_of_levels_is_refused(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("model: " + "[" * 600 + "]" * 600 + "\n")
    assert_bounded(*run_measured("fit", "--config", deep), "nested more than 50 levels deep")


def crafted_npz(path, arrays: dict, meta, compress=False):
    """An .npz with the given arrays and meta (a dict, written as JSON, or a raw array)."""
    members = {"meta": np.array(json.dumps(meta)) if isinstance(meta, dict) else meta, **arrays}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, array in members.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            archive.writestr(name + ".npy", buffer.getvalue())
    return path


def model_meta(hidden=100):
    from bp_train.config import load_config

    config = load_config(None, [f"model.hidden=[{{size: {hidden}}}]"])
    return {"format": "bp-train-model/1", "config": config.to_dict()}


@pytest.mark.slow
def test_a_small_model_file_declaring_a_huge_weight_is_refused_before_reading_it(tmp_path):
    huge = tmp_path / "huge.npz"
    crafted_npz(huge, {"W1": np.zeros((20000, 20000), np.float32)}, model_meta(20000), compress=True)
    assert huge.stat().st_size < 2_000_000
    test_csv = write_digit_csv(tmp_path / "t.csv", synthetic_digits(5)[0], None)
    code, stderr, seconds, peak = run_measured(
        "predict", "--model", huge, "--data", test_csv, "--out", tmp_path / "s.csv"
    )
    assert_bounded(code, stderr, seconds, peak, "is compressed; bp-train writes plain .npz files")


@pytest.fixture
def trained(tmp_path, tiny_config):
    run = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run, "--quiet").exit_code == 0
    with np.load(run / "model.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return run, arrays


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(W1=np.full_like(a["W1"], np.nan)), "array 'W1' holds NaN or infinite values"),
        (lambda a: a.update(extra=np.zeros(3)), "array 'extra' is not part of the network its config describes"),
        (lambda a: a.update(W2=a["W2"].astype(np.complex64)), "array 'W2' has dtype complex64; expected numbers"),
        (lambda a: a.update(b1=np.array(["x"] * a["b1"].size)), "array 'b1' has dtype <U1; expected numbers"),
        (lambda a: a.update(W1=a["W1"].T.copy()), "wrong shape or dtype of W1"),
        (lambda a: a.update(W1=a["W1"][:10]), "its saved config describes a network of"),
        (lambda a: a.update(meta=np.array("not json")), "no 'bp-train-model/1' header"),
        (
            lambda a: a.update(meta=np.array(json.dumps({"format": "bp-train-model/1", "config": [1, 2]}))),
            "no valid saved config",
        ),
        (lambda a: a.update(meta=np.array(3.0)), "array 'meta' has dtype float64; expected text"),
    ],
)
def test_crafted_model_files_are_refused_naming_what_is_wrong(trained, tmp_path, digits_csv, change, message):
    _, arrays = trained
    change(arrays)
    meta = arrays.pop("meta")
    bad = crafted_npz(tmp_path / "bad.npz", arrays, meta)
    result = run_cli("predict", "--model", bad, "--data", digits_csv, "--out", tmp_path / "s.csv")
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "s.csv").exists()


def test_a_gzip_bomb_posing_as_idx_is_stopped_at_the_limit(tmp_path):
    bomb = tmp_path / "images.gz"
    with gzip.open(bomb, "wb") as out:
        out.write(b"\x00\x00\x08\x03" + np.array([200000, 28, 28], ">u4").tobytes())
        for _ in range(160):
            out.write(bytes(1_000_000))
    assert bomb.stat().st_size < 2_000_000
    assert_bounded(
        *run_measured("data", "convert", "--images", bomb, "--out", tmp_path / "x.csv"),
        "inflates to more than 100,000,000 bytes",
    )


def test_a_csv_gzip_bomb_is_stopped_at_the_memory_limit_without_inflating_the_rest(tmp_path, monkeypatch):
    import bp_train.data.digits

    row = ("1," + ",".join(["0"] * 784) + "\n").encode()
    bomb = tmp_path / "train.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as out:
        out.write(("label," + ",".join(f"pixel{i}" for i in range(784)) + "\n").encode())
        for _ in range(40):
            out.write(row * 1000)  # 63 MB of text in all
    assert bomb.stat().st_size < 1_000_000
    read = []
    original = bp_train.data.digits._BoundedReader.read
    monkeypatch.setattr(bp_train.data.digits, "_text_limit", lambda: 20_000_000)
    monkeypatch.setattr(
        bp_train.data.digits._BoundedReader, "read", lambda self, size=-1: (read.append(size), original(self, size))[1]
    )
    result = run_cli("fit", "--data", bomb, "--out", tmp_path / "run", "--no-cache")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"{bomb}: more than 20 MB of CSV text" in result.stderr and "free memory can parse" in result.stderr
    assert sum(read) < 21_000_000  # stopped at the limit, the other 43 MB never inflated
    assert not (tmp_path / "run").exists()


def test_show_rows_with_a_huge_range_allocates_nothing(digits_csv):
    assert_bounded(*run_measured("show", digits_csv, "--rows", "0-999999999999"), "row 999999999999 is outside 0..599")


def test_a_csv_whose_first_row_has_extra_fields_is_an_error_on_line_2(tmp_path):
    images, labels = synthetic_digits(3)
    path = write_digit_csv(tmp_path / "wide.csv", images, labels)
    lines = path.read_text().splitlines()
    lines[1] += "," + ",".join(["7"] * 30000)
    path.write_text("\n".join(lines) + "\n")
    assert_bounded(*run_measured("fit", "--data", path, "--epochs", "1"), "line 2: more fields than the header's")


# --- 2. outputs that would overwrite inputs ----------------------------------------------------------------


def test_predict_never_writes_over_its_model_by_any_spelling(trained, tmp_path, digits_csv):
    run, _ = trained
    model = run / "model.npz"
    before = model.read_bytes()
    os.symlink(model, tmp_path / "link.npz")
    for spelling in (model, os.path.relpath(model), tmp_path / "link.npz", str(run) + "/./model.npz"):
        result = run_cli("predict", "--model", model, "--data", digits_csv, "--out", spelling)
        assert result.exit_code == 2 and "is the model file (--model) this command reads" in result.stderr
        result = run_cli("predict", "--model", model, "--data", digits_csv, "--proba", spelling)
        assert result.exit_code == 2
    assert model.read_bytes() == before


def test_data_convert_never_writes_over_its_idx_input(tmp_path):
    images = tmp_path / "images.idx"
    images.write_bytes(b"\x00\x00\x08\x03" + np.array([1, 28, 28], ">u4").tobytes() + bytes(784))
    before = images.read_bytes()
    result = run_cli("data", "convert", "--images", images, "--out", images)
    assert result.exit_code == 2 and "is the images file (--images)" in result.stderr
    assert images.read_bytes() == before


# --- 4. no tracebacks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["gradcheck", "--seed", "-1"], "-1 is not in the range"),
        (["gradcheck", "--tol", "nan"], "'nan' is not a finite number"),
        (["gradcheck", "--h", "inf"], "'inf' is not a finite number"),
        (["compare-speed", "--budget", "nan"], "'nan' is not a finite number"),
    ],
)
def test_bad_numeric_options_are_usage_errors(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2 and message in result.output


def test_labels_beyond_the_output_size_are_refused(digits_csv, tmp_path):
    result = run_cli("fit", "--data", digits_csv, "--set", "model.output_size=5", "--out", tmp_path / "r", "--quiet")
    assert result.exit_code == 2 and "model.output_size is 5 but" in result.stderr and "label 9" in result.stderr


def test_a_hand_edited_metrics_file_is_reported_not_a_traceback(trained):
    pytest.importorskip("matplotlib")
    run, _ = trained
    metrics = run / "metrics.csv"
    metrics.write_text(metrics.read_text().replace("\n1,", "\n1x,", 1))
    result = run_cli("plot", run)
    assert result.exit_code == 2 and "line 2, column 'epoch': '1x' is not a number" in result.stderr


def test_an_idx_file_with_zero_images_is_refused(tmp_path):
    empty = tmp_path / "empty.idx"
    empty.write_bytes(b"\x00\x00\x08\x03" + np.array([0, 28, 28], ">u4").tobytes())
    result = run_cli("data", "convert", "--images", empty, "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and "it holds no images" in result.stderr


# --- 5. quietly wrong is worse than an error ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  epochs: 3\n  epochs: 5\n", "line 3: duplicate key 'epochs' (first at line 2)"),
        ("train: {epochs: 3}\nmodel: {}\ntrain: {seed: 1}\n", "line 3: duplicate key 'train' (first at line 1)"),
        ("train: {optimizer: {lr: .inf}}\n", "'train.optimizer.lr' is inf; expected a finite number"),
        ("train: {weight_decay: .nan}\n", "'train.weight_decay' is nan; expected a finite number"),
        ("model: {init: -.inf}\n", "'model.init' is -inf"),
    ],
)
def test_duplicate_keys_and_non_finite_numbers_are_refused_before_any_run_folder_exists(tmp_path, text, message):
    config = tmp_path / "exp.yaml"
    config.write_text(text)
    result = run_cli("fit", "--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_reversed_rows_are_an_error_not_silence(digits_csv):
    result = run_cli("show", digits_csv, "--rows", "5-2")
    assert result.exit_code == 2 and "runs backwards; write 2-5" in result.stderr


def test_show_into_a_closed_pipe_stops_quietly(digits_csv):
    shell = subprocess.run(
        f"{sys.executable} -m bp_train.cli show {digits_csv} --rows 0-99 | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.stderr == "" and len(shell.stdout.splitlines()) == 1


@pytest.mark.parametrize("cell, shown", [("nan", "'nan', not a number"), ("NA", "'NA', not a number")])
def test_nan_and_na_cells_are_reported_as_written(tmp_path, cell, shown):
    images, labels = synthetic_digits(3)
    path = write_digit_csv(tmp_path / "cells.csv", images, labels)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[5] = cell
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("fit", "--data", path, "--out", tmp_path / "r")
    assert result.exit_code == 2 and f"line 3, column 'pixel4': the value is {shown}" in result.stderr


def test_a_repeated_column_is_reported_under_its_own_name(tmp_path):
    images, labels = synthetic_digits(3)
    path = write_digit_csv(tmp_path / "dup.csv", images, labels)
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("pixel5,", "pixel3,", 1)
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("fit", "--data", path, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "column 'pixel3' appears 2 times (columns 5, 7)" in result.stderr
    assert "pixel3.1" not in result.stderr


# --- 6. interrupts and full disks ---------------------------------------------------------------------------


def test_ctrl_c_during_predict_exits_130_and_writes_nothing(trained, tmp_path, digits_csv, monkeypatch):
    run, _ = trained
    from bp_train.nn.network import Network

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Network, "predict", interrupted)
    result = run_cli("predict", "--model", run / "model.npz", "--data", digits_csv, "--out", tmp_path / "s.csv")
    assert result.exit_code == 130 and "interrupted" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists()


def test_a_full_disk_while_writing_probabilities_leaves_neither_output_new(trained, tmp_path, digits_csv, monkeypatch):
    run, _ = trained
    submission, proba = tmp_path / "s.csv", tmp_path / "p.csv"
    submission.write_text("old submission\n")
    real_savetxt = np.savetxt

    def savetxt(fname, table, **kwargs):
        if "p0" in kwargs.get("header", ""):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savetxt(fname, table, **kwargs)

    monkeypatch.setattr(np, "savetxt", savetxt)
    result = run_cli(
        "predict", "--model", run / "model.npz", "--data", digits_csv, "--out", submission, "--proba", proba
    )
    assert result.exit_code == 2 and f"{proba}: No space left on device" in result.stderr
    assert submission.read_text() == "old submission\n" and not proba.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
