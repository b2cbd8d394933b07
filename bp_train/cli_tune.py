"""`bp-train tune`: the hyper-parameter search command (the engine is tune.py).

With --jobs K the command starts K worker processes (the work is CPU-bound: processes, not threads), each
running trials on the one study, and reports their trials as the storage records them. Each worker
process is this same command with the hidden --worker flag."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from .cli_common import BadInput, threads_option
from .config import load_config, run_name
from .errors import BPTrainError, Interrupted

POLL_SECONDS = 1.0


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="YAML config with a `tune` section: the metric, the trial budget and the space to search.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value before the search, as fit's --set (repeatable).")
@click.option("--data", help="Training CSV (shortcut for --set data.train=PATH).")
@click.option("--trials", type=click.IntRange(1, 100_000),
              help="The study's total number of trials (default: tune.trials). Run again to continue a study "
                   "up to it; raise it to search further.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes on this machine, each running trials of the same study.")
@click.option("--storage", metavar="URL",
              help="A database holding the study, shared by every machine started with it: postgresql://user@"
                   "host/db or mysql://... (SQLite only for one process at a time). Default: a journal file "
                   "in runs/STUDY/tune/.")
@click.option("--study", "study_name", help="Study name, which also names its folder runs/STUDY/tune/ "
              "(default: the config's name).")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Start no trial after this many seconds (a running trial finishes).")
@click.option("--quiet", is_flag=True, help="No progress bar; still one line per finished trial.")
@click.option("--worker", "worker_index", type=int, hidden=True)
@threads_option
def tune(config_path, overrides, data, trials, jobs, storage, study_name, timeout, quiet, worker_index):
    """Search hyper-parameters with Optuna: each trial is an ordinary fit of the config with values drawn
    from its `tune.space`, stopped early by the median pruner when it is hopeless.

    Writes runs/STUDY/tune/: a folder per trial, trials.csv, best.yaml (a complete config for fit),
    history.png and params.png; prints the best trials at the end.

    \b
    Example:
      bp-train tune --config configs/tune-default.yaml --jobs 2
    """
    from . import tune as engine

    overrides = list(overrides) + ([f"data.train={data}"] if data else [])
    config = load_config(config_path, overrides)
    if config.tune is None:
        raise BadInput(f"{config_path}: no `tune` section; add one naming the values to search, e.g. "
                       "tune: {space: {train.optimizer.lr: {log_uniform: [0.0001, 0.1]}}}")
    name = run_name(study_name or config.name, "--study")
    budget = trials or config.tune.trials
    deadline = time.monotonic() + timeout if timeout else None
    folder = engine.study_folder(name)
    engine.require_optuna()
    study = engine.open_study(config, name, engine.open_storage(storage, folder))
    threads = click.get_current_context().meta["threads"].threads

    if worker_index is not None:  # one of the processes a `tune --jobs K` started: trials only, no report
        _run_here(engine, study, config, budget, folder, deadline, worker_index, storage is not None)
        return
    if storage and storage.startswith("sqlite") and jobs > 1:
        click.echo("warning: SQLite is not meant for parallel writers (Optuna says so); use PostgreSQL or MySQL "
                   "for --jobs > 1, or the default journal file", err=True)
    used = engine.budget_used(study.get_trials(deepcopy=False))
    click.echo(f"study {name}: {used} of {budget} trials done; {config.tune.metric} decides; folder {folder}")
    from tqdm import tqdm
    bar = tqdm(total=budget, initial=min(used, budget), unit="trial", disable=quiet or used >= budget,
               dynamic_ncols=True, leave=False)
    seen = {t.number for t in engine.finished(study)}

    def report(trial):
        if trial.number not in seen:
            seen.add(trial.number)
            bar.update(1)
            tqdm.write(engine.describe(trial, config.tune.metric))

    try:
        if used < budget:
            if jobs == 1:
                _run_here(engine, study, config, budget, folder, deadline, 0, storage is not None, on_done=report)
            else:
                _run_workers(engine, study, config_path, overrides, budget, jobs, storage, name, timeout,
                             max(1, threads // jobs), report)
    except (KeyboardInterrupt, Interrupted):
        bar.close()
        _write_results(engine, study, config, folder, quiet=True)
        raise Interrupted(f"tune interrupted: the {len(engine.finished(study))} ended trials are kept in study {name} "
                          "(a running one is marked failed); run the same command again to continue") from None
    bar.close()
    _write_results(engine, study, config, folder)


def _run_here(engine, study, config, budget, folder, deadline, worker_index, shared, on_done=None):
    """Run trials in this process: the training CSV is read once and shared by all its trials."""
    from .train import training_digits
    study.sampler = engine.sampler_for(config, study, worker_index, shared)
    engine.run_worker(study, config, training_digits(config), budget, folder, deadline, on_done=on_done)


def _run_workers(engine, study, config_path, overrides, budget, jobs, storage, name, timeout, threads, report):
    """Start `jobs` worker processes on the study and report its trials as they end. Ctrl-C reaches the
    workers through this process only (they run in sessions of their own), once: each then marks its
    running trial failed and stops."""
    command = [sys.executable, "-m", "bp_train.cli", "tune", "--config", str(config_path), "--trials", str(budget),
               "--study", name, "--threads", str(threads)]
    for assignment in overrides:
        command += ["--set", assignment]
    if storage:
        command += ["--storage", storage]
    if timeout:
        command += ["--timeout", str(timeout)]
    # Their stderr goes to files: a pipe nobody reads until the end could fill and stall a worker.
    errors = [tempfile.TemporaryFile("w+") for _ in range(jobs)]
    workers = [subprocess.Popen(command + ["--worker", str(i)], start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=errors[i], text=True) for i in range(jobs)]
    try:
        while any(w.poll() is None for w in workers):
            time.sleep(POLL_SECONDS)
            for trial in engine.finished(study):
                report(trial)
    except KeyboardInterrupt:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGINT)
        for w in workers:
            w.wait(timeout=120)
        raise
    for trial in engine.finished(study):
        report(trial)
    failed = [(w, e) for w, e in zip(workers, errors) if w.returncode != 0]
    if failed:
        worker, error = failed[0]
        error.seek(0)
        message = error.read().strip().splitlines()
        raise BPTrainError(f"a tune worker stopped with exit code {worker.returncode}: "
                           f"{message[-1] if message else 'no message'}")


def _write_results(engine, study, config, folder: Path, quiet: bool = False):
    metric = config.tune.metric
    written = [engine.write_trials_csv(study, folder, metric)]
    best = engine.write_best(study, folder, metric)
    if best is not None:
        written.append(best)
    trials = [{"number": t.number, "outcome": t.user_attrs.get("outcome"), "value": engine.trial_value(t),
               "params": t.params} for t in engine.finished(study)]
    log_params = {k for k, d in config.tune.space.items() if next(iter(d)) in ("log_uniform", "log_int")}
    try:
        from .plots import tune_plots
        written += tune_plots(trials, metric, log_params, folder)
    except BPTrainError as exc:  # matplotlib missing: the table and the files still matter
        click.echo(f"no plots: {exc}", err=True)
    if quiet:
        return
    if best is None:
        click.echo("no trial completed, so there is no best.yaml; see trials.csv for what happened")
    else:
        click.echo(engine.results_table(study, metric))
    click.echo("wrote " + ", ".join(str(p) for p in written))
