"""Hostile input, round four, class by class (pictures are in test_images.py, exercise verdicts in
test_exercises.py, make kaggle's checks in test_make_kaggle.py): the server under resets and crowds,
damaged state never written before a check, invalid values in model files, unbounded --model, messages
that name the real problem, and long work that shows its progress on a terminal."""

import http.client
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import run_cli, run_measured, synthetic_digits, write_digit_csv
from test_hostile import assert_bounded
from test_serve import start_server


def one_line_exit_2(result, *words):
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def model(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "run" / "model.npz"


# --- the server: resets, crowds, IPv6 ----------------------------------------------------------------------


def answered(port, host="127.0.0.1"):
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/")
    status = connection.getresponse().status
    connection.close()
    return status


def test_resets_and_a_crowd_of_idle_connections_leave_the_console_quiet_and_the_page_answered(model):
    port, process = start_server(model)
    try:
        for _ in range(20):  # a client that sends half a request and resets the connection
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"POST /api/predict HTTP/1.1\r\nContent-Length: 5000\r\n\r\nabc")
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]  # each holds a thread
        time.sleep(0.5)
        refused = 0
        for client in crowd[-20:]:  # beyond the server's 64 threads: answered 503 at once, not left hanging
            client.settimeout(5)
            refused += client.recv(100).startswith(b"HTTP/1.1 503")
        assert refused == 20
        for client in crowd:
            client.close()
        time.sleep(0.5)
        assert answered(port) == 200 and process.poll() is None
        peak_kib = int(open(f"/proc/{process.pid}/status").read().split("VmHWM:")[1].split()[0])
        assert peak_kib < 500 * 1024, peak_kib
    finally:
        process.terminate()
        rest = process.communicate(timeout=10)[1]
    assert "Traceback" not in rest and rest.count("\n") <= 1, rest


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_time(model, monkeypatch):
    """A slow client holds a thread only so long (the server's IDLE_SECONDS, 20; here made 1)."""
    import threading

    from bp_train.serve import server as serving
    from bp_train.training.voting import load_ensemble

    monkeypatch.setattr(serving.Handler, "timeout", 1)
    digit_server = serving.DigitServer(("127.0.0.1", 0), load_ensemble([model]))
    thread = threading.Thread(target=digit_server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        with socket.create_connection(digit_server.server_address, timeout=10) as client:
            client.sendall(b"GET / HT")  # half a request line, then nothing
            started = time.monotonic()
            assert client.recv(100) == b""  # closed by the server
            assert time.monotonic() - started < 5
    finally:
        digit_server.shutdown()
        digit_server.server_close()


def test_serve_listens_on_ipv6_loopback(model):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    port, process = start_server(model, host="::1")
    try:
        assert answered(port, "::1") == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- no damaged state before a check; no writing through links ---------------------------------------------


def test_fit_with_bad_data_writes_no_folder_and_the_next_right_command_works(tmp_path, tiny_config, digits_csv):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,pixel0\n1,2,3\n")
    for args in (["--seeds", "1,2", "--out", tmp_path / "ens"], ["--out", tmp_path / "run"]):
        result = run_cli("fit", "--config", tiny_config, "--data", bad, *args, "--quiet")
        one_line_exit_2(result, str(bad))
        assert "writing" not in result.stdout and "training the ensemble" not in result.stdout
    assert not (tmp_path / "ens").exists() and not (tmp_path / "run").exists()
    again = run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--out", tmp_path / "ens", "--quiet")
    assert again.exit_code == 0, again.stderr


def test_resuming_never_writes_through_a_link_in_a_run_or_an_ensemble(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--out", tmp_path / "ens", "--quiet")
    assert result.exit_code == 0, result.stderr
    other = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "other", "--quiet")
    assert other.exit_code == 0
    kept = (tmp_path / "other" / "model.npz").read_bytes()
    member = tmp_path / "ens" / "seed-2"
    (member / "model.npz").unlink()
    os.symlink(tmp_path / "other" / "model.npz", member / "model.npz")
    for target in (member, tmp_path / "ens"):
        resumed = run_cli("fit", "--resume", target, "--epochs", "5", "--quiet")
        one_line_exit_2(resumed, "a link")
    assert (tmp_path / "other" / "model.npz").read_bytes() == kept


# --- invalid values in model files; unbounded --model ------------------------------------------------------


def damaged_models(tmp_path, tiny_config):
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(tiny_config, ["model.hidden=[{size: 16, batchnorm: true}]"])
    made = {}
    network = build_network(config, seed=1)
    network.buffers["running_var1"][3] = -0.5
    made["a negative BatchNorm variance"] = tmp_path / "negative.npz"
    save_model(made["a negative BatchNorm variance"], network, config.to_dict())
    network = build_network(load_config(tiny_config), seed=1)
    for key in network.weight_keys:
        network.params[key][...] = 1e30  # finite float32, and every score overflows
    made["weights that overflow"] = tmp_path / "overflow.npz"
    save_model(made["weights that overflow"], network, load_config(tiny_config).to_dict())
    return made


def test_a_model_that_would_read_every_digit_as_nan_is_refused_everywhere(tmp_path, tiny_config):
    images, _ = synthetic_digits(5)
    write_digit_csv(tmp_path / "test.csv", images, None)
    for what, path in damaged_models(tmp_path, tiny_config).items():
        for args in (
            ["predict", "--model", path, "--data", tmp_path / "test.csv", "--out", tmp_path / "s.csv"],
            ["export", "--model", path, "--onnx", tmp_path / "m.onnx"],
            ["serve", "--model", path, "--port", "0"],
        ):
            one_line_exit_2(run_cli(*args), str(path))
        assert not (tmp_path / "s.csv").exists() and not (tmp_path / "m.onnx").exists(), what


def test_model_given_hundreds_of_times_is_refused_before_any_is_loaded(tmp_path, model):
    repeated = [arg for _ in range(101) for arg in ("--model", str(model))]
    assert_bounded(*run_measured("predict", *repeated, "--data", "x.csv", cwd=tmp_path), "at most 100")


# --- messages that name the real problem --------------------------------------------------------------------


def test_a_fifo_a_device_a_link_loop_and_an_alias_bomb_are_named_as_what_they_are(tmp_path, model, digits_csv):
    os.mkfifo(tmp_path / "pipe")
    os.symlink("loop", tmp_path / "loop")
    cases = {
        "a FIFO as a model": (["predict", "--model", tmp_path / "pipe", "--data", "x.csv"], "FIFO"),
        "a FIFO as a config": (["fit", "--config", tmp_path / "pipe"], "FIFO"),
        "a FIFO as a picture": (["predict", "--model", model, "--image", tmp_path / "pipe"], "FIFO"),
        "/dev/zero as a model": (["predict", "--model", "/dev/zero", "--data", "x.csv"], "a device"),
        "a link loop as a model": (["predict", "--model", tmp_path / "loop", "--data", "x.csv"], "loop"),
        "a link loop as --out": (["fit", "--out", tmp_path / "loop", "--data", digits_csv, "--epochs", "1"], "loop"),
    }
    ensemble = tmp_path / "ens"
    ensemble.mkdir()
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdefgh", "bcdefghi")]
    (ensemble / "ensemble.yaml").write_text("\n".join(lines) + "\nformat: *i\n")
    cases["an alias bomb as a manifest"] = (["predict", "--model", ensemble, "--data", "x.csv"], "expands to more")
    for what, (args, words) in cases.items():
        code, stderr, seconds, peak = run_measured(*args, cwd=tmp_path, timeout=20)
        assert code == 2 and words in stderr and stderr.count("\n") == 1, (what, stderr)
        assert seconds < 10 and peak < 500, (what, seconds, peak)


def test_a_nan_timeout_is_a_usage_error_in_one_line(tmp_path):
    one_line_exit_2(run_cli("exercise", "check", "relu", "--timeout", "nan"), "not a finite number")


# --- long work shows its progress on a terminal ------------------------------------------------------------


def on_a_terminal(*args, cwd):
    """`bp-train ARGS` with a pseudo-terminal as its stdout and stderr; (exit code, everything written)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    process = subprocess.Popen(
        [sys.executable, "-m", "bp_train.cli", *map(str, args)], stdout=follower, stderr=follower, cwd=cwd
    )
    os.close(follower)
    written = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        written += chunk
    os.close(leader)
    return process.wait(timeout=60), written.decode(errors="replace")


def test_predict_with_an_ensemble_and_tta_shows_a_progress_bar_on_a_terminal(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--out", tmp_path / "ens", "--quiet")
    assert result.exit_code == 0
    images, _ = synthetic_digits(300)
    write_digit_csv(tmp_path / "test.csv", np.zeros_like(images) + images, None)
    command = ["predict", "--model", tmp_path / "ens", "--tta", "--data", tmp_path / "test.csv", "--out", "s.csv"]
    code, written = on_a_terminal(*command, cwd=tmp_path)
    assert code == 0 and "reading:" in written and "digit" in written, written
    piped = run_cli(*command[:-1], tmp_path / "piped.csv")  # not a terminal: no bar
    assert piped.exit_code == 0 and "reading" not in piped.stderr
