"""Hostile input, round three (issue: special files, locks, hints, messages): an output that is a FIFO, a
device or a link is written to as it is and never replaced; a .lock that is a link is never followed; a
message is one line before anything is printed."""

import os
import stat
import threading

import numpy as np
import pytest
from conftest import run_cli, run_measured


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
    for args in (
        ["predict", "--model", model, "--data", digits_csv, "--out", null],
        ["predict", "--model", model, "--data", digits_csv, "--out", tmp_path / "s.csv", "--proba", null],
    ):
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


def bounded_fetch(tmp_path, mirror):
    code, stderr, seconds, peak = run_measured(
        "data", "fetch", "--dest", tmp_path / "data", "--mirror", mirror, "--no-default-mirrors"
    )
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]  # the rest: the progress bar
    assert code == 2 and len(errors) == 1 and "train-images-idx3-ubyte.gz" in errors[0], stderr
    assert "Traceback" not in stderr
    assert seconds < 10 and peak < 500, (seconds, peak)
    assert not (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    return errors[0]


def test_a_mirrors_gzip_bomb_is_inflated_no_further_than_the_file_can_be(tmp_path):
    import zlib

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(mirror / "train-images-idx3-ubyte.gz", "wb") as out:  # 2 GB of zeros in about 2 MB
        for _ in range(2048):
            out.write(packer.compress(bytes(1 << 20)))
        out.write(packer.flush())
    assert (mirror / "train-images-idx3-ubyte.gz").stat().st_size < 3_000_000
    assert "inflates to more than 47,040,016 bytes" in bounded_fetch(tmp_path, f"file://{mirror}/")


def test_a_mirror_file_that_never_ends_is_cut_off_at_the_files_size(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "train-images-idx3-ubyte.gz").symlink_to("/dev/zero")
    assert "sent more than" in bounded_fetch(tmp_path, f"file://{mirror}/")


def test_an_endless_http_mirror_is_cut_off(tmp_path):
    import http.server

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(200):  # bounded: 200 MB at most, on loopback only
                    self.wfile.write(b"\x1f\x8b" + bytes(1 << 20))
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert "sent more than" in bounded_fetch(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "command",
    [
        ["explain", "network", "--png", "{csv}"],
        ["plot", "--activations", "{config}", "--out", "{csv}"],
        ["plot", "--augment", "{config}", "--out", "{csv}"],
    ],
)
def test_no_output_may_overwrite_the_configs_training_csv(command, tmp_path, digits_csv):
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{train: {digits_csv}}}\ntrain: {{augment: {{shift: 2}}}}\n")
    before = digits_csv.read_bytes()
    args = [str(a).format(csv=digits_csv, config=config) for a in command]
    if command[0] == "explain":
        args += ["--config", str(config)]
    result = run_cli(*args)
    assert result.exit_code == 2 and "training data" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert digits_csv.read_bytes() == before


def tamper(checkpoint, change):
    """Rewrite a checkpoint with `change(arrays, meta)` applied, as bp-train's own writer would."""
    from bp_train.files.store import load_arrays, save_arrays

    arrays, meta = load_arrays(checkpoint, kind="checkpoint")
    change(arrays, meta)
    save_arrays(checkpoint, arrays, meta)


TAMPERED = {
    "a wrong weight shape": lambda a, m: a.__setitem__("param/W1", np.zeros((3, 3))),
    "an extra array": lambda a, m: a.__setitem__("param/W9", np.zeros(3)),
    "a missing array": lambda a, m: a.pop("param/b1"),
    "an extra run-state key": lambda a, m: m["run"].__setitem__("sneaky", 1),
    "a missing run-state key": lambda a, m: m["run"].pop("bad_epochs"),
    "a string epoch": lambda a, m: m["run"].__setitem__("epoch", "2"),
    "a negative epoch": lambda a, m: m["run"].__setitem__("epoch", -1),
    "a history that is not a list": lambda a, m: m["run"].__setitem__("history", {"a": 1}),
    "a damaged random stream": lambda a, m: m["rng"].__setitem__("shuffle", {"state": 3}),
}


@pytest.mark.parametrize("what", list(TAMPERED))
def test_a_tampered_checkpoint_is_one_line_and_the_run_folder_is_left_as_it_was(what, tmp_path, tiny_config):
    run = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run, "--quiet", "--epochs", "2").exit_code == 0
    tamper(run / "checkpoint.npz", TAMPERED[what])
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = run_cli("fit", "--resume", run, "--epochs", "3", "--quiet")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "checkpoint.npz" in result.stderr, (
        what,
        result.stderr[-300:],
    )
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
