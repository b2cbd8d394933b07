"""`bp-train tune`: the hyper-parameter search command (the engine is tune.py).

With --jobs K the command starts K worker processes (the work is CPU-bound: processes, not threads), each
running trials on the one study, and reports their trials as they end (tune/search.py)."""

from __future__ import annotations

import click

from ..config import load_config, run_name
from .common import BadInput, FiniteFloat, threads_option


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML config with a `tune` section: the metric, the trial budget and the space to search.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value before the search, as fit's --set (repeatable).",
)
@click.option("--data", help="Training CSV (shortcut for --set data.train=PATH).")
@click.option(
    "--trials",
    type=click.IntRange(1, 100_000),
    help="The study's total number of trials (default: tune.trials). Run again to continue a study "
    "up to it; raise it to search further.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes on this machine, each running trials of the same study.",
)
@click.option(
    "--storage",
    metavar="URL",
    help="A database holding the study, shared by every machine started with it: postgresql://user@"
    "host/db or mysql://... (SQLite only for one process at a time). Default: a journal file "
    "in runs/STUDY/tune/.",
)
@click.option(
    "--study",
    "study_name",
    help="Study name, which also names its folder runs/STUDY/tune/ (default: the config's name).",
)
@click.option(
    "--timeout",
    type=FiniteFloat(0.0),
    metavar="SECONDS",
    help="Start no trial after this many seconds (a running trial finishes).",
)
@click.option("--quiet", is_flag=True, help="No progress bar; still one line per finished trial.")
@threads_option
def tune(config_path, overrides, data, trials, jobs, storage, study_name, timeout, quiet):
    """Search hyper-parameters with Optuna: each trial is an ordinary fit of the config with values drawn
    from its `tune.space`, stopped early by the median pruner when it is hopeless.

    Writes runs/STUDY/tune/: a folder per trial, trials.csv, best.yaml (a complete config for fit),
    history.png and params.png; prints the best trials at the end.

    \b
    Example:
      bp-train tune --config configs/tune-default.yaml --jobs 2
    """
    from ..tune.search import Search

    overrides = list(overrides) + ([f"data.train={data}"] if data else [])
    config = load_config(config_path, overrides)
    if config.tune is None:
        raise BadInput(
            f"{config_path}: no `tune` section; add one naming the values to search, e.g. "
            "tune: {space: {train.optimizer.lr: {log_uniform: [0.0001, 0.1]}}}"
        )
    from ..nn.backend import array_module

    array_module(config.train.device)  # no CuPy or no GPU: said now, not by every trial failing in turn
    search = Search(
        config,
        name=run_name(study_name or config.name, "--study"),
        storage=storage,
        budget=trials or config.tune.trials,
        timeout=timeout,
        threads=click.get_current_context().meta["threads"].threads,
        log=click.echo,
    )
    search.run(jobs, quiet)
