"""Hyper-parameter search on Optuna: every trial is an ordinary fit of the config with sampled values.

The study NAME (default: the config's name) keeps its files in runs/NAME/tune/:
    journal.log       the study itself, in Optuna's journal file (the default storage: no server needed)
    trial-007/        each trial's run folder, as `fit` writes it (config.yaml, metrics.csv, model.npz, ...)
    trials.csv        one row per trial: number, state, sampled values, metric, epochs run, seconds
    best.yaml         the best trial's complete config; `bp-train fit --config best.yaml` trains it again
    history.png       the metric of every trial in order, and the best so far
    params.png        each sampled value against the metric

With a database URL as storage (PostgreSQL, MySQL; SQLite for one process at a time) the same command on
several machines works on one study. The trial budget (tune.trials, or --trials) is the study's total:
running the command again continues the study up to it, and no worker starts a trial past it.

Optuna is an optional extra (`.venv/bin/python -m pip install -e '.[tune]'`); nothing else in bp-train imports this file.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np

from ..config import Config, assign, config_from_dict, dump_config, parse_key
from ..errors import BPTrainError, Interrupted, ctrl_c_held
from ..files.store import write_text
from ..nn.errors import NetworkError
from ..training.runfolder import open_run_folder
from ..training.trainer import fit
from .heartbeat import trial_heartbeat
from .storage import require_optuna

# Trials that end this way do not use up the budget: an interrupted one is run again by the next command,
# a surplus one (asked for when another worker had taken the last place) never ran, and a stale one (its
# worker was killed; marked failed by Optuna's heartbeat check, with no outcome of ours) never finished.
NOT_COUNTED = ("interrupted", "surplus", None)


def study_folder(study_name: str, runs: Path = Path("runs")) -> Path:
    return runs / study_name / "tune"


def _comparable(config: Config) -> dict:
    """What every worker of one study must agree on: the config without its data path (machines differ)
    and without the budget (which a later command may raise)."""
    raw = config.to_dict()
    raw["data"].pop("train")
    raw.pop("name")
    raw["tune"].pop("trials")
    return raw


def open_study(config: Config, study_name: str, storage):
    """Create the study, or load it if it exists; refuse to mix configs within one study."""
    optuna = require_optuna()
    tune = config.tune
    # The steps are our epoch numbers (1, 2, ...), and steps below the warm-up are never judged: the first
    # judgement comes after epoch min_epochs.
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=tune.min_epochs)
        if tune.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        pruner=pruner,
        load_if_exists=True,
        direction="maximize" if tune.metric == "val_accuracy" else "minimize",
    )
    mine = _comparable(config)
    theirs = study.user_attrs.get("config")
    if theirs is None:
        study.set_user_attr("config", mine)
    elif theirs != mine:
        key = _first_difference(theirs, mine)
        raise BPTrainError(
            f"study {study_name} was started with another config ({key} differs); give this search "
            "its own --study name, or run the config the study was started with"
        )
    return study


def _first_difference(a, b, prefix="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return prefix.rstrip(".") or "the config"


def budget_used(trials) -> int:
    """Trials that count against the budget: running ones and those that ended on their own."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in trials
        if t.state in (TrialState.RUNNING, TrialState.WAITING) or t.user_attrs.get("outcome") not in NOT_COUNTED
    )


def sampler_for(config: Config, study, worker: int, shared: bool):
    """TPE (or random search), seeded from the config's seed, the study's progress and the worker's number, so that one worker
    on its own reproduces its search, and parallel workers do not all propose the same values. Workers on
    other machines (a shared database) add the process id."""
    import os

    optuna = require_optuna()
    entropy = [config.train.seed, len(study.get_trials(deepcopy=False)), worker] + ([os.getpid()] if shared else [])
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    if config.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: a trial still running counts as a poor result, so that workers started together do
    # not all propose the values TPE likes best (Optuna's remedy for parallel TPE)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def sample(trial, space: dict) -> dict:
    """One value per searched key, by its distribution."""
    values = {}
    for key, dist in space.items():
        ((kind, args),) = dist.items()
        if kind in ("uniform", "log_uniform"):
            values[key] = trial.suggest_float(key, args[0], args[1], log=kind == "log_uniform")
        elif kind in ("int", "log_int"):
            values[key] = trial.suggest_int(key, args[0], args[1], log=kind == "log_int")
        elif all(v is None or isinstance(v, (bool, int, float, str)) for v in args):
            values[key] = trial.suggest_categorical(key, args)
        else:  # lists or mappings (whole layer stacks): Optuna stores choices as plain values, so as JSON text
            values[key] = json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in args]))
    return values


def trial_config(config: Config, values: dict, name: str) -> Config:
    raw = config.to_dict()
    raw.pop("tune")
    raw["name"] = name
    for key, value in values.items():
        assign(raw, parse_key(key, f"tune.space {key}"), value, f"tune.space {key}")
    return config_from_dict(raw, f"trial {name}")


def end_trial(study, trial, outcome: str, state, value: float | None = None, **attrs) -> None:
    """Record how a trial ended (our `outcome`, any other attributes) and tell the study, as one step: a
    Ctrl-C meanwhile is raised once it is written."""
    with ctrl_c_held():
        trial.set_user_attr("outcome", outcome)
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        study.tell(trial, value, state=state)


def run_trial(study, trial, config: Config, digits, folder: Path) -> None:
    """Fit one trial into folder/trial-NNN, reporting the metric after every epoch to the pruner, and tell
    the study how it ended: complete, pruned, or failed (with the error; divergence included). However it
    ends, a Ctrl-C included, the trial is not left running."""
    optuna = require_optuna()
    from optuna.trial import TrialState

    metric, epochs, started = config.tune.metric, [0], time.monotonic()
    try:
        values = sample(trial, config.tune.space)
        name = f"trial-{trial.number:03d}"
        trial_cfg = trial_config(config, values, f"{folder.parent.name}-{name}")
        trial.set_user_attr("config", json.loads(json.dumps(trial_cfg.to_dict())))
        trial.set_user_attr("run", str(folder / name))
    except BaseException as exc:  # a Ctrl-C while sampling, or values the config refuses
        end_trial(study, trial, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", TrialState.FAIL)
        raise

    def report(row):
        epochs[0] = row["epoch"]
        trial.report(float(row[metric]), row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned()

    ended = False

    def end(outcome, state, value=None, **extra):
        nonlocal ended
        if not ended:  # a Ctrl-C raised just after the end was written must not end the trial twice
            ended = True
            end_trial(
                study,
                trial,
                outcome,
                state,
                value,
                epochs=epochs[0],
                seconds=round(time.monotonic() - started, 1),
                **extra,
            )

    try:
        with open_run_folder(folder / name, trial_cfg.name) as run:
            summary = fit(trial_cfg, run, digits=digits, show_progress=False, log=lambda line: None, on_epoch=report)
        end("complete", TrialState.COMPLETE, float(summary[metric]))
    except optuna.TrialPruned:
        end("pruned", TrialState.PRUNED)
    except (Interrupted, KeyboardInterrupt):
        end("interrupted", TrialState.FAIL)
        raise
    except (BPTrainError, NetworkError) as exc:
        end("failed", TrialState.FAIL, error=str(exc))
    except BaseException as exc:
        end("failed", TrialState.FAIL, error=f"{type(exc).__name__}: {exc}")
        raise


def run_worker(
    study, config: Config, digits, budget: int, folder: Path, deadline: float | None = None, on_done=None
) -> None:
    """Run trials until the study has `budget` of them (counting other workers') or the deadline passes."""
    optuna = require_optuna()
    from optuna.trial import TrialState

    while deadline is None or time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a database study's trials whose worker was killed
        if budget_used(study.get_trials(deepcopy=False)) >= budget:
            return
        trial, ended = None, False
        try:
            with ctrl_c_held(), warnings.catch_warnings():  # once ask returns, the trial is ours to end
                # Optuna warns that ask/tell gets no heartbeat: this loop keeps one itself (below)
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = study.ask()
            # Another worker may have taken the last place between our count and our ask: then this trial
            # is surplus and never runs, so the study ends with exactly `budget` trials.
            earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
            if budget_used(earlier) >= budget:
                ended = True  # (a Ctrl-C that end_trial holds back is raised after the end is written)
                end_trial(study, trial, "surplus", TrialState.FAIL)
                return
        except KeyboardInterrupt:
            if trial is not None and not ended:
                end_trial(study, trial, "interrupted", TrialState.FAIL)
            raise
        # The heartbeat Study.optimize keeps (a database study's storage only; a no-op otherwise): while it
        # beats, other workers know the trial is alive; once it stops, fail_stale_trials above fails it.
        with trial_heartbeat(study, trial):
            run_trial(study, trial, config, digits, folder)
        if on_done is not None:
            on_done(_frozen(study, trial.number))


def _frozen(study, number: int):
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


# --- results -----------------------------------------------------------------------------------------------


def finished(study) -> list:
    """The study's trials that ran and ended (complete, pruned or failed), in order."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False) if t.state in done and t.user_attrs.get("outcome") != "surplus"]


def trial_value(trial) -> float | None:
    """The trial's metric: its final value, or for a pruned one the last value it reported."""
    if trial.value is not None:
        return trial.value
    return trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None


def describe(trial, metric: str) -> str:
    outcome = trial.user_attrs.get("outcome", trial.state.name.lower())
    value = trial_value(trial)
    shown = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if outcome == "failed":
        return f"trial {trial.number} failed: {trial.user_attrs.get('error', '')} ({shown})"
    if outcome == "interrupted":
        return f"trial {trial.number} interrupted ({shown})"
    when = f"pruned at epoch {trial.user_attrs.get('epochs')}" if outcome == "pruned" else "complete"
    epochs = trial.user_attrs.get("epochs")
    return (
        f"trial {trial.number} {when}: {metric} {value:.4f} after {epochs} epoch{'s' * (epochs != 1)}, "
        f"{trial.user_attrs.get('seconds')} s ({shown})"
    )


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_trials_csv(study, folder: Path, metric: str) -> Path:
    trials = finished(study)
    params = sorted({k for t in trials for k in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", *params, metric, "epochs", "seconds", "error"])
    for t in trials:
        value = trial_value(t)
        writer.writerow(
            [
                t.number,
                t.user_attrs.get("outcome", t.state.name.lower()),
                *[t.params.get(k, "") for k in params],
                "" if value is None else repr(value),
                t.user_attrs.get("epochs", ""),
                t.user_attrs.get("seconds", ""),
                t.user_attrs.get("error", ""),
            ]
        )
    write_text(folder / "trials.csv", out.getvalue())
    return folder / "trials.csv"


def ranked(study) -> list:
    """The complete trials, best first (the earlier of equal ones first)."""
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    complete = [t for t in finished(study) if t.user_attrs.get("outcome") == "complete"]
    return sorted(complete, key=lambda t: (sign * t.value, t.number))


def best_trial(study):
    return next(iter(ranked(study)), None)


def write_best(study, folder: Path, metric: str) -> Path | None:
    """best.yaml: the best complete trial's config, renamed so that a refit gets a folder of its own."""
    best = best_trial(study)
    if best is None:
        return None
    raw = copy.deepcopy(best.user_attrs["config"])
    raw["name"] = f"{folder.parent.name}-best"
    config = config_from_dict(raw, f"trial {best.number}'s config")
    header = (
        f"# The best of {len(finished(study))} trials of study {study.study_name}: trial {best.number}, "
        f"{metric} {best.value:.4f}.\n# Train it again: bp-train fit --config {folder / 'best.yaml'}\n"
    )
    write_text(folder / "best.yaml", header + dump_config(config))
    return folder / "best.yaml"


def results_table(study, metric: str, top: int = 5) -> str:
    """The best trials, best first, with their values: the table `tune` prints at the end."""
    complete = ranked(study)
    params = sorted({k for t in complete for k in t.params})
    rows = [["trial", metric, "epochs", *params]]
    rows += [
        [
            str(t.number),
            f"{t.value:.4f}",
            str(t.user_attrs.get("epochs")),
            *[_short(t.params.get(k, "")) for k in params],
        ]
        for t in complete[:top]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)
