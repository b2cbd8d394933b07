"""`fit --seeds ... --jobs N`: members trained side by side in processes of their own give exactly the
members trained one after another (with the same thread count), and a Ctrl-C, a failing member or a
killed worker ends the command as any fit ends: one line, the right exit code, every member resumable."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli, synthetic_digits, write_digit_csv

from bp_train.config import load_config
from bp_train.errors import ConfigError
from bp_train.training.memory import check_training_memory, estimate_bytes

LAUNCH = [sys.executable, "-c", "from bp_train.launch import main; main()"]  # what the bp-train script runs
FILES = ("model.npz", "checkpoint.npz")


def weights(member: Path) -> dict:
    with np.load(member / "model.npz") as saved:
        return {k: saved[k].copy() for k in saved.files if not k.startswith("__")}


def metrics_without_times(member: Path) -> list[list[str]]:
    return [line.split(",")[:-1] for line in (member / "metrics.csv").read_text().splitlines()]


def test_members_trained_side_by_side_equal_members_trained_in_turn(tmp_path, tiny_config):
    side = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--seeds",
        "1,2,3",
        "--jobs",
        "2",
        "--threads",
        "2",
        "--out",
        tmp_path / "side",
        "--quiet",
    )
    assert side.exit_code == 0, side.output
    assert "3 members (seeds 1, 2, 3); 2 trained at a time, 1 BLAS thread each" in side.output
    for seed in (1, 2, 3):  # each member's own lines reach the parent, named
        assert f"seed-{seed}: epoch 3/3: train loss" in side.output
    turn = run_cli(
        "fit", "--config", tiny_config, "--seeds", "1,2,3", "--threads", "1", "--out", tmp_path / "turn", "--quiet"
    )
    assert turn.exit_code == 0, turn.output
    for seed in (1, 2, 3):
        a, b = weights(tmp_path / "side" / f"seed-{seed}"), weights(tmp_path / "turn" / f"seed-{seed}")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), seed
        assert metrics_without_times(tmp_path / "side" / f"seed-{seed}") == metrics_without_times(
            tmp_path / "turn" / f"seed-{seed}"
        )
    assert (
        weights(tmp_path / "side" / "seed-1")["W1"].tobytes() != weights(tmp_path / "side" / "seed-2")["W1"].tobytes()
    )


EPOCHS = 40


def slow_config(tmp_path, epochs=EPOCHS) -> Path:
    """40 epochs of about a sixth of a second: a member is still training when the parent, interrupted
    alone, passes the Ctrl-C on after its grace period (machine/workers.GRACE_SECONDS)."""
    images, labels = synthetic_digits(6000, seed=5)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    path = tmp_path / "slow.yaml"
    path.write_text(
        f"name: slow\nmodel: {{hidden: [{{size: 512, activation: relu}}]}}\n"
        f"data: {{train: {data}, val_fraction: 0.1}}\n"
        f"train: {{epochs: {epochs}, batch_size: 50, optimizer: {{name: sgd, lr: 0.05}}, seed: 0}}\n"
    )
    return path


def epochs_written(member: Path) -> int:
    try:
        return len((member / "metrics.csv").read_text().splitlines()) - 1
    except OSError:
        return 0


def start_ensemble(tmp_path, config, *more):
    folder = tmp_path / "ens"
    child = subprocess.Popen(
        LAUNCH
        + [
            "fit",
            "--config",
            str(config),
            "--seeds",
            "1,2,3",
            "--jobs",
            "2",
            "--threads",
            "2",
            "--out",
            str(folder),
            "--quiet",
            *more,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # its own process group, as a terminal's job is
    deadline = time.monotonic() + 60
    while min(epochs_written(folder / "seed-1"), epochs_written(folder / "seed-2")) < 2:
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    return child, folder


def worker_pids(parent: int) -> list[int]:
    """The training workers among the parent's children (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["the terminal's process group", "the parent alone"])
def test_ctrl_c_stops_every_member_in_one_line_and_resume_finishes_them_exactly(tmp_path, whom):
    config = slow_config(tmp_path)
    child, folder = start_ensemble(tmp_path, config)
    if whom == "the parent alone":  # e.g. `timeout -s INT`: the parent passes it on to its workers
        child.send_signal(signal.SIGINT)
    else:
        os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "seed-1 and seed-2 stopped part way" in err and "seed-3 not started" in err
    assert f"bp-train fit --resume {folder}" in err
    assert not (folder / "seed-3").exists()
    stopped = {seed: epochs_written(folder / f"seed-{seed}") for seed in (1, 2)}
    assert all(2 <= done < EPOCHS for done in stopped.values()), stopped
    resumed = run_cli("fit", "--resume", folder, "--jobs", "2", "--threads", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    for seed in (1, 2):
        assert f"seed-{seed}): stopped after epoch {stopped[seed]} of {EPOCHS}, to resume" in resumed.output
    assert "seed-3): to train" in resumed.output
    # a resume is exact: each member equals the same seed trained in one go with one thread
    whole = run_cli(
        "fit", "--config", config, "--seeds", "1,2,3", "--threads", "1", "--out", tmp_path / "whole", "--quiet"
    )
    assert whole.exit_code == 0, whole.output
    for seed in (1, 2, 3):
        a, b = weights(folder / f"seed-{seed}"), weights(tmp_path / "whole" / f"seed-{seed}")
        assert all(np.array_equal(a[k], b[k]) for k in a), seed


@pytest.mark.slow
def test_a_killed_worker_is_one_line_and_the_other_member_keeps_its_checkpoint(tmp_path):
    child, folder = start_ensemble(tmp_path, slow_config(tmp_path))
    victim = worker_pids(child.pid)
    assert len(victim) == 2
    os.kill(victim[0], signal.SIGKILL)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "its process ended (exit code -9) before finishing" in err
    resumed = run_cli("fit", "--resume", folder, "--jobs", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert all(epochs_written(folder / f"seed-{seed}") == EPOCHS for seed in (1, 2, 3))


def test_a_member_that_fails_ends_the_command_in_one_line(tmp_path):
    images, labels = synthetic_digits(20, seed=6)
    bad = write_digit_csv(tmp_path / "bad.csv", images, labels)
    lines = bad.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",x"  # the last pixel of the CSV's line 3
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli(
        "fit", "--data", bad, "--seeds", "1,2", "--jobs", "2", "--out", tmp_path / "ens", "--quiet", "--no-cache"
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and str(bad) in lines[0] and "line 3" in lines[0], result.output
    assert "Traceback" not in result.output


def test_jobs_without_an_ensemble_is_refused(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--jobs", "2", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--jobs 2 trains the members of an ensemble" in result.output
    assert not (tmp_path / "run").exists()
    result = run_cli("fit", "--config", tiny_config, "--seeds", "1,2", "--jobs", "0")
    assert result.exit_code == 2 and "--jobs" in result.output


def test_members_side_by_side_must_fit_in_memory_together(tmp_path, tiny_config):
    config = load_config(tiny_config)
    need = estimate_bytes(config)[0]
    check_training_memory(config, have=need * 3, at_once=3)
    with pytest.raises(ConfigError, match=r"--jobs 3: 3 members side by side need about"):
        check_training_memory(config, have=need * 3 - 1, at_once=3)
