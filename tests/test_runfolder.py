"""Run folders stay true: numbered folders instead of silent replacement, --overwrite that swaps only a run
with something to show, one writer per folder, plain run names."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train.training.runfolder import FolderLock, holds_run, open_run_folder
from bp_train.training.trainer import Trainer


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def fit(*args, cwd=None):
    return run_cli("fit", *args, "--quiet", cwd=cwd)


def leftovers(parent):
    """Hidden staging or old-run folders an overwrite might leave beside its target."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_fits_without_out_get_numbered_folders_and_never_replace_each_other(tmp_path, tiny_config):
    assert fit("--config", tiny_config, cwd=tmp_path).exit_code == 0
    first = snapshot(tmp_path / "runs" / "tiny")
    second = fit("--config", tiny_config, "--set", "train.seed=4", cwd=tmp_path)
    third = fit("--config", tiny_config, "--set", "train.seed=5", cwd=tmp_path)
    assert second.exit_code == third.exit_code == 0
    assert "runs/tiny-2" in second.output and "runs/tiny-3" in third.output
    assert snapshot(tmp_path / "runs" / "tiny") == first
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"tiny", "tiny-2", "tiny-3"}
    assert "seed: 5" in (tmp_path / "runs" / "tiny-3" / "config.yaml").read_text()


def test_an_empty_folder_is_used_rather_than_numbering_past_it(tmp_path, tiny_config):
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    assert fit("--config", tiny_config, cwd=tmp_path).exit_code == 0
    assert (tmp_path / "runs" / "tiny" / "model.npz").is_file() and not (tmp_path / "runs" / "tiny-2").exists()


def test_out_that_holds_a_run_is_refused_without_overwrite_and_left_alone(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    before = snapshot(run_dir)
    result = fit("--config", tiny_config, "--out", run_dir, "--set", "train.seed=9")
    assert result.exit_code == 2
    assert f"--out {run_dir} already holds a run; pass --overwrite" in result.stderr
    assert f"--resume {run_dir}" in result.stderr and result.stderr.count("\n") == 1
    assert snapshot(run_dir) == before


def test_out_that_is_a_file_is_refused(tmp_path, tiny_config):
    (tmp_path / "taken").write_text("mine")
    result = fit("--config", tiny_config, "--out", tmp_path / "taken")
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert (tmp_path / "taken").read_text() == "mine"


def test_overwrite_replaces_the_run_once_the_new_one_has_an_epoch(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir, "--epochs", "3").exit_code == 0
    (run_dir / "learning_curves.png").write_bytes(b"the old run's plot")
    result = fit("--config", tiny_config, "--out", run_dir, "--overwrite", "--epochs", "2", "--set", "train.seed=9")
    assert result.exit_code == 0, result.output
    assert "seed: 9" in (run_dir / "config.yaml").read_text()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 2
    assert not (run_dir / "learning_curves.png").exists() and not (run_dir / ".lock").exists()
    assert leftovers(tmp_path) == []
    assert run_cli("fit", "--resume", run_dir, "--epochs", "3", "--quiet").exit_code == 0  # a whole, resumable run


@pytest.mark.parametrize("out", ["", ".", "..", "project", "project/sub"])
def test_overwrite_never_replaces_a_folder_that_is_not_a_run(tmp_path, tiny_config, monkeypatch, out):
    # A project folder (code, a .git, notes), the folder we stand in, or one above it: --overwrite is for
    # runs only. (Found the hard way: `fit --out '' --overwrite` once replaced the current folder.)
    project = tmp_path / "project"
    (project / "sub" / ".git").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    (project / "sub" / "checkpoint.npz").write_bytes(b"not ours")
    (project / "sub" / "code.py").write_text("print(1)")
    monkeypatch.chdir(project / "sub" if out in ("", ".", "..") else tmp_path)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = fit("--config", tiny_config, "--out", out, "--overwrite", "--epochs", "1")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "current folder or holds it" in result.stderr or "is not part of a bp-train run" in result.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert (project / "notes.txt").read_text() == "mine"


def test_out_that_holds_other_files_is_refused_before_anything_is_written_into_it(tmp_path, tiny_config):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("chapter 1")
    for extra in ([], ["--overwrite"]):
        result = fit("--config", tiny_config, "--out", folder, *extra)
        assert result.exit_code == 2 and "holds 'thesis.tex', which is not part of a bp-train run" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def test_overwrite_that_diverges_in_its_first_epoch_leaves_the_old_run_untouched(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    before = snapshot(run_dir)
    result = fit(
        "--config", tiny_config, "--out", run_dir, "--overwrite", "--set", "train.optimizer={name: sgd, lr: 1.0e+30}"
    )
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "Nothing was replaced" in result.stderr and f"{run_dir} still holds the previous run" in result.stderr
    assert snapshot(run_dir) == before and leftovers(tmp_path) == []


def test_overwrite_with_bad_data_leaves_the_old_run_untouched(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    before = snapshot(run_dir)
    (tmp_path / "bad.csv").write_text("label,pixel0\n1,2,3\n")
    result = fit("--config", tiny_config, "--out", run_dir, "--overwrite", "--data", tmp_path / "bad.csv")
    assert result.exit_code == 2
    assert snapshot(run_dir) == before and leftovers(tmp_path) == []


def test_overwrite_interrupted_in_its_first_epoch_leaves_the_old_run_untouched(tmp_path, tiny_config, monkeypatch):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    before = snapshot(run_dir)

    def interrupted(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run_epoch", interrupted)
    result = fit("--config", tiny_config, "--out", run_dir, "--overwrite")
    assert result.exit_code == 130
    assert "still holds the previous run" in result.stderr and "--resume" not in result.stderr
    assert snapshot(run_dir) == before and leftovers(tmp_path) == []


def test_overwrite_that_fails_after_its_first_epoch_leaves_the_new_run_whole_and_resumable(
    tmp_path, tiny_config, monkeypatch
):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    original = Trainer.run_epoch

    def interrupted_in_epoch_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_epoch_2)
    result = fit("--config", tiny_config, "--out", run_dir, "--overwrite", "--set", "train.seed=9")
    assert result.exit_code == 130 and f"Resume with: bp-train fit --resume {run_dir}" in result.stderr
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert "seed: 9" in (run_dir / "config.yaml").read_text()
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 1
    assert run_cli("fit", "--resume", run_dir, "--quiet").exit_code == 0
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_a_failed_first_fit_leaves_no_empty_folder(tmp_path, tiny_config):
    (tmp_path / "bad.csv").write_text("label,pixel0\n1,2,3\n")
    result = fit("--config", tiny_config, "--data", tmp_path / "bad.csv", cwd=tmp_path)
    assert result.exit_code == 2
    assert not (tmp_path / "runs").exists()  # nor the runs/ folder it made for it


def test_a_held_folder_is_refused_naming_the_folder_and_its_holder(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir).exit_code == 0
    before = snapshot(run_dir)
    lock = FolderLock(run_dir).acquire()
    try:
        for args in (["--resume", run_dir], ["--config", tiny_config, "--out", run_dir, "--overwrite"]):
            result = fit(*args)
            assert result.exit_code == 2, args
            assert f"{run_dir} is being written by bp-train fit (pid {os.getpid()}" in result.stderr
    finally:
        lock.release()
    assert {k: v for k, v in snapshot(run_dir).items() if k != ".lock"} == before


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert fit("--config", tiny_config, "--out", run_dir, "--epochs", "1").exit_code == 0
    (run_dir / ".lock").write_text("bp-train fit (pid 99999999 on gone, since long ago)\n")
    assert run_cli("fit", "--resume", run_dir, "--epochs", "2", "--quiet").exit_code == 0
    assert not (run_dir / ".lock").exists()


def test_two_fit_processes_never_write_one_folder(tmp_path):
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
        "--set",
        "model.hidden=[{size: 64}]",
        "--quiet",
    ]
    child = subprocess.Popen(
        command + ["--epochs", "500", "--out", str(run_dir)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "metrics.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (run_dir / "metrics.csv").exists()
        for extra in (["--overwrite"], ["--resume", str(run_dir)]):
            second = subprocess.run(
                command + ["--epochs", "500"] + (extra if "--resume" in extra else ["--out", str(run_dir)] + extra),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 2, second.stderr
            assert f"{run_dir} is being written by bp-train fit (pid {child.pid} " in second.stderr
        other = subprocess.run(
            command + ["--epochs", "1", "--out", str(tmp_path / "other")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode == 0, other.stderr
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=60)
    assert child.returncode == 130 and not (run_dir / ".lock").exists()


def test_numbering_skips_a_folder_another_fit_has_claimed(tmp_path):
    runs = tmp_path / "runs"
    first = open_run_folder(None, "x", runs=runs)
    try:
        assert first.target == runs / "x" and not holds_run(first.target)
        second = open_run_folder(None, "x", runs=runs)  # x is empty but locked: in use, not free
        try:
            assert second.target == runs / "x-2"
        finally:
            second.__exit__(None, None, None)
    finally:
        first.__exit__(None, None, None)
    assert not runs.joinpath("x").exists() and not runs.joinpath("x-2").exists()  # nothing was written: removed


@pytest.mark.parametrize("name", ["..", "../../x", "a/b", ".hidden", "", "x" * 101, "/abs"])
def test_run_names_are_plain_names(tmp_path, tiny_config, name):
    result = fit("--config", tiny_config, "--set", f"name={name!r}" if name else "name=''", cwd=tmp_path)
    assert result.exit_code == 2 and "'name' is" in result.stderr and "plain name" in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_a_config_file_name_that_is_not_plain_gives_a_plain_run_name(tmp_path, tiny_config):
    odd = tmp_path / "my exp (v2).yaml"
    odd.write_text(tiny_config.read_text().replace("name: tiny\n", ""))
    assert fit("--config", odd, cwd=tmp_path).exit_code == 0
    assert (tmp_path / "runs" / "my-exp-v2" / "model.npz").is_file()


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_overwrite_clears_what_an_overwrite_killed_mid_way_left_behind(tmp_path, tiny_config):
    run = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run, "--epochs", "1", "--quiet").exit_code == 0
    pid = dead_pid()
    staging = tmp_path / f".run.new-{pid}"  # kill -9 before the swap: a half-trained staging folder
    staging.mkdir()
    (staging / "model.npz").write_bytes(b"half")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    running = tmp_path / f".run.new-{other.pid}"  # a live process's own: not ours to clear
    running.mkdir()
    try:
        assert (
            run_cli("fit", "--config", tiny_config, "--out", run, "--overwrite", "--epochs", "1", "--quiet").exit_code
            == 0
        )
    finally:
        other.kill()
        other.wait()
    assert not staging.exists() and running.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".run.")) == [running.name]


def test_a_swap_killed_between_its_two_renames_gets_the_previous_run_back(tmp_path, tiny_config):
    run = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run, "--epochs", "1", "--quiet").exit_code == 0
    model = (run / "model.npz").read_bytes()
    pid = dead_pid()
    run.rename(tmp_path / f".run.old-{pid}")  # the old run moved aside, the new one not yet in place
    (tmp_path / f".run.new-{pid}").mkdir()
    result = run_cli("fit", "--config", tiny_config, "--out", run, "--epochs", "1", "--quiet")
    assert result.exit_code == 2 and "already holds a run" in result.output  # the previous run is back
    assert (run / "model.npz").read_bytes() == model
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.")]


def test_overwrite_through_a_link_replaces_the_run_where_it_lives_and_keeps_the_link(tmp_path, tiny_config):
    real, link = tmp_path / "real", tmp_path / "link"
    assert run_cli("fit", "--config", tiny_config, "--out", real, "--epochs", "1", "--quiet").exit_code == 0
    link.symlink_to(real)
    assert (
        run_cli("fit", "--config", tiny_config, "--out", link, "--overwrite", "--epochs", "2", "--quiet").exit_code == 0
    )
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert len((real / "metrics.csv").read_text().splitlines()) == 3  # the new, 2-epoch run
    assert not (real / ".lock").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .old-PID, no .new-PID
