"""Hostile input, round three (issue: special files, locks, hints, messages): an output that is a FIFO, a
device or a link is written to as it is and never replaced; a .lock that is a link is never followed; a
message is one line before anything is printed."""

import os
import stat

import pytest

from conftest import run_cli


@pytest.fixture
def model(tmp_path, tiny_config):
    assert run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet").exit_code == 0
    return tmp_path / "run" / "model.npz"


def test_an_output_that_is_a_fifo_is_written_into_and_stays_a_fifo(tmp_path, model, digits_csv):
    fifo = tmp_path / "submission.csv"
    os.mkfifo(fifo)
    # The reading end, opened first (without waiting for a writer): the few kB of predictions fit in the
    # pipe's buffer, so the command writes and closes, and then we read.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = run_cli("predict", "--model", model, "--data", digits_csv, "--out", fifo)
        received = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # not replaced by a regular file
    assert received.startswith(b"ImageId,Label\n") and received.count(b"\n") == 601


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root (as CI and containers run)")
def test_an_output_that_is_a_device_stays_the_device(tmp_path, model, digits_csv):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own, in a scratch folder
    for args in (["predict", "--model", model, "--data", digits_csv, "--out", null],
                 ["predict", "--model", model, "--data", digits_csv, "--out", tmp_path / "s.csv", "--proba", null]):
        assert run_cli(*args).exit_code == 0
        assert stat.S_ISCHR(os.lstat(null).st_mode) and os.major(os.lstat(null).st_rdev) == 1


def test_an_output_that_is_a_link_stays_a_link_and_writes_where_it_points(tmp_path, model, digits_csv):
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert run_cli("predict", "--model", model, "--data", digits_csv, "--out", link).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("ImageId,Label\n")


def test_a_lock_that_is_a_link_is_never_followed(tmp_path, tiny_config):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    result = run_cli("fit", "--config", tiny_config, "--out", run, "--quiet")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "symbolic link" in result.stderr
    assert victim.read_text() == "do not touch\n" and sorted(p.name for p in run.iterdir()) == [".lock"]
    result = run_cli("fit", "--config", tiny_config, "--out", run, "--quiet", "--overwrite")
    assert result.exit_code == 2 and victim.read_text() == "do not touch\n"


def test_explain_png_into_a_missing_folder_fails_before_printing_the_graph(tmp_path):
    result = run_cli("explain", "xyz", "--png", tmp_path / "no" / "such" / "x.png")
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
