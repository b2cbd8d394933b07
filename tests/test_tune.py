"""`bp-train tune`: Optuna studies of ordinary fits, on one storage from one or several processes."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train.training.trainer import Trainer

optuna = pytest.importorskip("optuna", reason="Optuna is the optional extra tune (make install has it)")

SPACE = """
  space:
    train.optimizer.lr: {log_uniform: [1.0e-4, 0.3]}
    model.hidden[0].size: {choice: [8, 16]}
"""


def make_config(folder: Path, tune: str = "  trials: 4\n  startup_trials: 2\n" + SPACE, epochs: int = 2) -> Path:
    images, labels = synthetic_digits(500, seed=5)
    images[:, :] = (images * 0.35).astype(images.dtype)  # fainter bands: accuracy differs between trials
    write_digit_csv(folder / "d.csv", images, labels)
    path = folder / "search.yaml"
    path.write_text(f"""name: search
model: {{hidden: [{{size: 16}}]}}
data: {{train: d.csv, val_fraction: 0.3}}
train: {{epochs: {epochs}, batch_size: 50, optimizer: {{name: sgd, lr: 0.05}}, seed: 3}}
tune:
{tune}""")
    return path


def trials_csv(folder: Path) -> list[dict]:
    with open(folder / "runs" / "search" / "tune" / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def tune(folder, *args):
    return run_cli("tune", "--config", folder / "search.yaml", "--threads", "1", "--quiet", *args, cwd=folder)


def command(folder, *args):
    return [
        sys.executable,
        "-m",
        "bp_train.cli",
        "tune",
        "--config",
        str(folder / "search.yaml"),
        "--threads",
        "1",
        "--quiet",
        *map(str, args),
    ]


def test_a_study_writes_trials_best_config_and_plots_and_best_refits_to_its_metric(tmp_path):
    make_config(tmp_path)
    result = tune(tmp_path)
    assert result.exit_code == 0, result.output
    study = tmp_path / "runs" / "search" / "tune"
    for name in ("trials.csv", "best.yaml", "history.png", "params.png", "journal.log"):
        assert (study / name).is_file(), name
    rows = trials_csv(tmp_path)
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert all((study / f"trial-{int(r['number']):03d}" / "metrics.csv").is_file() for r in rows)
    assert "trial  val_accuracy" in result.output  # the final table
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: (float(r["val_accuracy"]), -int(r["number"])))
    saved = yaml.safe_load((study / "best.yaml").read_text())
    assert "tune" not in saved and saved["name"] == "search-best"
    assert saved["train"]["optimizer"]["lr"] == pytest.approx(float(best["train.optimizer.lr"]), rel=1e-12)
    refit = run_cli("fit", "--config", study / "best.yaml", "--threads", "1", "--json", "--quiet", cwd=tmp_path)
    assert refit.exit_code == 0, refit.output
    assert json.loads(refit.stdout)["val_accuracy"] == float(best["val_accuracy"])


def test_pruning_stops_hopeless_trials_early(tmp_path):
    make_config(
        tmp_path,
        "  trials: 8\n  startup_trials: 2\n  sampler: random\n  space:\n"
        "    train.optimizer.lr: {choice: [1.0e-7, 0.1]}\n",
        epochs=4,
    )
    # seed 4: the random draws put both kinds among the first two trials, so the pruner has a median to use
    assert tune(tmp_path, "--set", "train.seed=4").exit_code == 0
    rows = trials_csv(tmp_path)
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned and all(float(r["train.optimizer.lr"]) == 1e-7 and int(r["epochs"]) < 4 for r in pruned)
    assert all(
        r["state"] == "complete" and int(r["epochs"]) == 4 for r in rows if float(r["train.optimizer.lr"]) == 0.1
    )


def test_running_the_command_again_continues_the_study(tmp_path):
    make_config(tmp_path)
    assert tune(tmp_path, "--trials", "2").exit_code == 0
    first = trials_csv(tmp_path)
    assert tune(tmp_path).exit_code == 0  # tune.trials is 4
    again = trials_csv(tmp_path)
    assert len(again) == 4 and again[:2] == first
    done = tune(tmp_path)
    assert done.exit_code == 0 and "4 of 4 trials done" in done.output and trials_csv(tmp_path) == again


def test_two_jobs_share_the_budget_and_run_no_trial_twice(tmp_path):
    make_config(tmp_path, "  trials: 6\n" + SPACE)
    result = tune(tmp_path, "--jobs", "2")
    assert result.exit_code == 0, result.output
    rows = trials_csv(tmp_path)
    assert sorted(int(r["number"]) for r in rows) == list(range(6))
    study = tmp_path / "runs" / "search" / "tune"
    assert sorted(p.name for p in study.glob("trial-*")) == [f"trial-{n:03d}" for n in range(6)]


def test_two_commands_started_at_once_on_one_study_finish_exactly_its_budget(tmp_path):
    make_config(tmp_path, "  trials: 5\n" + SPACE)
    workers = [
        subprocess.Popen(command(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    rows = trials_csv(tmp_path)
    assert len(rows) == 5 and len({r["number"] for r in rows}) == 5
    assert all(r["state"] in ("complete", "pruned") for r in rows)


def test_ctrl_c_keeps_finished_trials_marks_the_running_one_and_a_rerun_completes(tmp_path, monkeypatch):
    make_config(tmp_path)
    original, calls = Trainer.run_epoch, []

    def interrupted_in_the_second_trial(self, epoch):
        calls.append(epoch)
        if len(calls) == 3:  # trial 0 ran its 2 epochs; this is trial 1's first
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_the_second_trial)
    result = tune(tmp_path)
    assert result.exit_code == 130 and "run the same command again to continue" in result.stderr
    assert [(r["number"], r["state"]) for r in trials_csv(tmp_path)] == [("0", "complete"), ("1", "interrupted")]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "search" / "tune" / "journal.log"))
    )
    states = [t.state.name for t in optuna.load_study(study_name="search", storage=storage).trials]
    assert states == ["COMPLETE", "FAIL"]  # never left RUNNING
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert tune(tmp_path).exit_code == 0
    rows = trials_csv(tmp_path)
    assert sum(r["state"] != "interrupted" for r in rows) == 4  # the interrupted trial did not use up the budget


def test_a_diverging_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    make_config(tmp_path, "  trials: 4\n  pruner: none\n  space:\n    train.optimizer.lr: {choice: [1.0e+30, 0.05]}\n")
    assert tune(tmp_path).exit_code == 0
    rows = trials_csv(tmp_path)
    assert len(rows) == 4
    for row in rows:
        if float(row["train.optimizer.lr"]) == 1e30:
            assert row["state"] == "failed" and "training diverged" in row["error"]
        else:
            assert row["state"] == "complete"


def test_a_study_refuses_a_different_config(tmp_path):
    make_config(tmp_path)
    assert tune(tmp_path, "--trials", "1").exit_code == 0
    result = tune(tmp_path, "--set", "train.batch_size=20")
    assert (
        result.exit_code == 2
        and "study search was started with another config (train.batch_size differs)" in result.stderr
    )


@pytest.mark.parametrize(
    "tune_section, message",
    [
        (
            "  space: {train.optimizer.lr: {loguniform: [1, 2]}}",
            "unknown distribution 'tune.space.train.optimizer.lr.loguniform' (did you mean 'log_uniform'?)",
        ),
        ("  space: {train.optimizer.lr: {log_uniform: [0.1, 0.01]}}", "expected [low, high] with low < high"),
        (
            "  space: {train.optimiser.lr: {uniform: [0.1, 0.2]}}",
            "unknown key 'train.optimiser' (did you mean 'optimizer'?)",
        ),
        ("  space: {train.epochs: {int: [0, 3]}}", "tune.space 'train.epochs' = 0: 'train.epochs' is 0"),
        ("  metrc: val_loss\n" + SPACE, "unknown key 'tune.metrc' (did you mean 'metric'?)"),
    ],
)
def test_a_bad_tune_section_fails_when_read_naming_the_key(tmp_path, tune_section, message):
    make_config(tmp_path, tune_section + "\n")
    for args in (["tune"], ["fit", "--quiet"]):  # checked by every command that reads the config
        result = run_cli(*args, "--config", tmp_path / "search.yaml", cwd=tmp_path)
        assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "tune_section, message",
    [
        ("  space: {train.epochs: {int: [1, 2]}, 'train.epochs ': {int: [1, 3]}}", "names the same config key"),
        ("  space: {data.train_rows: {int: [1, 100]}}", "leaves no validation row"),
    ],
)
def test_a_space_that_would_silently_misbehave_is_refused_when_read(tmp_path, tune_section, message):
    make_config(tmp_path, tune_section + "\n")
    result = tune(tmp_path)
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_device_tune_cannot_use_is_refused_before_any_trial(tmp_path, monkeypatch):
    make_config(tmp_path)
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy
    result = tune(tmp_path, "--set", "train.device=cuda")
    assert result.exit_code == 2 and "cupy" in result.stderr.lower() and result.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_a_study_named_like_a_fit_run_is_refused_and_the_run_untouched(tmp_path):
    make_config(tmp_path)
    assert (
        run_cli(
            "fit",
            "--config",
            tmp_path / "search.yaml",
            "--out",
            tmp_path / "runs" / "search",
            "--epochs",
            "1",
            "--quiet",
            cwd=tmp_path,
        ).exit_code
        == 0
    )
    before = sorted(p.name for p in (tmp_path / "runs" / "search").iterdir())
    result = tune(tmp_path)
    assert result.exit_code == 2 and "holds a fit run" in result.stderr and "--study" in result.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "search").iterdir()) == before


def test_a_second_storage_for_one_study_folder_is_refused(tmp_path):
    make_config(tmp_path)
    assert tune(tmp_path, "--trials", "1").exit_code == 0
    trials = (tmp_path / "runs" / "search" / "tune" / "trials.csv").read_bytes()
    result = tune(tmp_path, "--storage", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 2 and "another" in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "runs" / "search" / "tune" / "trials.csv").read_bytes() == trials


@pytest.mark.parametrize("damage", ["garbage line", "cut last line", "random bytes", "nul padding"])
def test_a_damaged_journal_is_refused_and_never_written_to(tmp_path, damage):
    make_config(tmp_path)
    assert tune(tmp_path, "--trials", "1").exit_code == 0
    journal = tmp_path / "runs" / "search" / "tune" / "journal.log"
    good = journal.read_bytes()
    journal.write_bytes(
        {
            "garbage line": good + b"not json at all\n",
            "cut last line": good[:-7],
            "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
            "nul padding": good + b"\x00" * 4096,
        }[damage]
    )
    before = journal.read_bytes()
    result = tune(tmp_path, "--trials", "2")
    assert result.exit_code == 2 and "journal.log" in result.stderr and "damaged" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert journal.read_bytes() == before


@pytest.mark.parametrize("damage", ["header", "cut in half"])
def test_a_damaged_sqlite_study_is_refused_and_never_written_to(tmp_path, damage):
    make_config(tmp_path)
    database = tmp_path / "study.db"
    assert tune(tmp_path, "--trials", "1", "--study", "db", "--storage", f"sqlite:///{database}").exit_code == 0
    good = database.read_bytes()
    database.write_bytes(b"garbage!" * 4 + good[32:] if damage == "header" else good[: len(good) // 2])
    before = database.read_bytes()
    result = tune(tmp_path, "--trials", "2", "--study", "db", "--storage", f"sqlite:///{database}")
    assert result.exit_code == 2 and "study.db" in result.stderr and "damaged" in result.stderr
    assert result.stderr.count("\n") == 1
    assert database.read_bytes() == before


def test_parallel_tpe_workers_lie_about_running_trials():
    from bp_train.config import load_config
    from bp_train.tune.study import sampler_for

    config = load_config(
        None, ["tune.space={train.optimizer.lr: {log_uniform: [0.001, 0.1]}}", "data.val_fraction=0.2"]
    )
    study = optuna.create_study()
    assert sampler_for(config, study, 0, False)._constant_liar


def test_without_optuna_tune_says_how_to_install_it(tmp_path, monkeypatch):
    make_config(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = tune(tmp_path)
    assert result.exit_code == 2 and ".venv/bin/python -m pip install -e '.[tune]'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_bad_storage_url_is_one_line(tmp_path):
    make_config(tmp_path)
    for url, message in (
        ("redis://x", "expected a database URL"),
        ("postgresql://nobody:secret@127.0.0.1:1/none", "cannot open the database"),
    ):
        result = tune(tmp_path, "--storage", url)
        assert result.exit_code == 2 and message in result.stderr and "secret" not in result.stderr


# --- many machines: one PostgreSQL study ------------------------------------------------------------------


def _postgres_binaries() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and shutil.which("initdb") else None


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL server on a free local port, run as the `postgres` user when we are root
    (PostgreSQL refuses to run as root)."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt install postgresql)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg (pip install 'psycopg[binary]')")
    as_user = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    home = Path(
        tempfile.mkdtemp(prefix="bp-train-pg-")
    )  # outside pytest's private folders, which postgres cannot enter
    os.chmod(home, 0o755)
    data = home / "pgdata"
    data.mkdir()
    if as_user:
        shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = lambda *args: subprocess.run(
        as_user + [str(binaries / args[0]), *args[1:]], capture_output=True, text=True, timeout=120
    )
    init = run("initdb", "-D", str(data), "-U", "bp", "--auth=trust")
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-200:]}")
    start = run(
        "pg_ctl",
        "-D",
        str(data),
        "-w",
        "-l",
        str(data / "log"),
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        "start",
    )
    assert start.returncode == 0, start.stderr
    try:
        created = subprocess.run(
            as_user
            + [
                str(binaries / "createdb") if (binaries / "createdb").exists() else "createdb",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "bp",
                "study",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        yield f"postgresql://bp@127.0.0.1:{port}/study"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_a_worker_that_loses_the_race_to_create_the_schema_looks_again(tmp_path, monkeypatch):
    """Two workers started at once on an empty database both create Optuna's tables and types; the loser
    gets "already exists" (as a ProgrammingError from PostgreSQL for a type, an IntegrityError for a row)
    and must open the storage on a second look. Any other error is reported at once, as one line."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    from bp_train.errors import BPTrainError
    from bp_train.tune import storage as tune

    monkeypatch.setattr(tune.time, "sleep", lambda seconds: None)
    url = "postgresql://bp:secret@db.example/study"
    for lost in (
        ProgrammingError("CREATE TYPE", {}, Exception('type "studydirection" already exists')),
        IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
    ):
        calls = []

        def storage(*args, lost=lost, **kwargs):
            calls.append(args)
            if len(calls) == 1:
                raise lost
            return "opened"

        monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
        assert tune.open_storage(url, tmp_path) == "opened" and len(calls) == 2
    calls = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", refused)
    with pytest.raises(BPTrainError, match="cannot open the database .*connection refused") as error:
        tune.open_storage(url, tmp_path)
    assert len(calls) == 1 and "secret" not in str(error.value)


def test_two_workers_on_one_postgresql_study(tmp_path, postgres):
    make_config(tmp_path, "  trials: 6\n" + SPACE)
    # Two "machines": separate folders, one study in the database.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(tmp_path / "d.csv", tmp_path / name / "d.csv")
    workers = [
        subprocess.Popen(
            command(tmp_path, "--storage", postgres),
            cwd=tmp_path / name,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name="search", storage=postgres)
    ran = [t for t in study.trials if t.user_attrs.get("outcome") != "surplus"]
    assert len(ran) == 6 and sorted(t.number for t in ran) == sorted({t.number for t in ran})
    folders = [p.name for name in ("a", "b") for p in (tmp_path / name / "runs" / "search" / "tune").glob("trial-*")]
    assert len(folders) == 6 == len(set(folders))  # each trial ran on exactly one "machine"
    reported = []
    for name in ("a", "b"):  # each machine reports the whole study as it stood when it finished
        with open(tmp_path / name / "runs" / "search" / "tune" / "trials.csv", newline="") as handle:
            reported.append(len(list(csv.DictReader(handle))))
    assert max(reported) == 6


@pytest.mark.parametrize("moment", ["ask", "sample", "tell"])
def test_a_ctrl_c_at_any_moment_of_a_trial_leaves_it_ended_not_running(tmp_path, monkeypatch, moment):
    """A Ctrl-C while Optuna creates a trial (ask), samples its values, or writes its end (tell) used to
    leave it RUNNING in the storage, with no worker left to end it."""
    from bp_train.tune import study as engine

    make_config(tmp_path, "  trials: 3\n" + SPACE)
    target, name = {"ask": (optuna.Study, "ask"), "sample": (engine, "sample"), "tell": (optuna.Study, "tell")}[moment]
    original, sent = getattr(target, name), []

    def interrupted_midway(*args, **kwargs):
        result = original(*args, **kwargs)  # the storage has changed: a trial made, sampled or ended
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the signal lands here, inside the step, as a real Ctrl-C may
        return result

    monkeypatch.setattr(target, name, interrupted_midway)
    result = tune(tmp_path)
    assert result.exit_code == 130 and sent, result.output
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "search" / "tune" / "journal.log"))
    )
    trials = optuna.load_study(study_name="search", storage=storage).trials
    assert trials and all(t.state.name in ("COMPLETE", "FAIL") for t in trials), [t.state.name for t in trials]
    assert trials[-1].user_attrs["outcome"] == ("complete" if moment == "tell" else "interrupted")


def test_ctrl_c_stops_all_worker_processes_and_leaves_no_trial_running(tmp_path):
    make_config(tmp_path, "  trials: 40\n" + SPACE, epochs=30)
    parent = subprocess.Popen(
        command(tmp_path, "--jobs", "2"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    journal = tmp_path / "runs" / "search" / "tune"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(journal.glob("trial-*"))) < 3:
        time.sleep(0.1)
    parent.send_signal(signal.SIGINT)
    _, err = parent.communicate(timeout=180)
    assert parent.returncode == 130 and "run the same command again to continue" in err, err
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal / "journal.log")))
    states = [t.state.name for t in optuna.load_study(study_name="search", storage=storage).trials]
    assert states and "RUNNING" not in states and "WAITING" not in states
    assert (journal / "trials.csv").is_file()


def test_a_database_study_keeps_a_heartbeat_so_a_killed_workers_trial_is_failed_not_left_running(tmp_path):
    """ask/tell gets no heartbeat from Optuna (it warns so, once per trial): tune keeps one itself, so the
    trial of a worker killed with -9 is found stale and failed, and no warning reaches the user."""
    import sqlite3
    import warnings

    import optuna

    from bp_train.tune.storage import open_storage

    make_config(tmp_path, epochs=100000)  # a trial that runs until it is killed
    database = tmp_path / "study.db"
    worker = subprocess.Popen(
        command(tmp_path, "--trials", "1", "--study", "db", "--storage", f"sqlite:///{database}"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    beats, deadline = [], time.monotonic() + 60
    while not beats and time.monotonic() < deadline:
        time.sleep(0.2)
        if database.exists():
            with sqlite3.connect(database) as db:
                tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
                if "trial_heartbeats" in tables:
                    beats = db.execute("select trial_id from trial_heartbeats").fetchall()
    worker.kill()
    _, stderr = worker.communicate(timeout=30)
    assert beats, "no heartbeat recorded for the running trial"
    assert "Warning" not in stderr, stderr
    with sqlite3.connect(database) as db:  # as if the grace period had passed since the worker died
        db.execute("update trial_heartbeats set heartbeat = datetime('now', '-1 day')")
    study = optuna.load_study(study_name="db", storage=open_storage(f"sqlite:///{database}", tmp_path))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]
