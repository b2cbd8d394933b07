"""`bp-train fit` and `compare`: train a network, or a chapter-6 experiment's variants side by side.

Each command parses its options and hands over to the part that does the work (training/, files/)."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Config, learning_rate_warning, load_config
from ..errors import BPTrainError
from ..nn.backend import array_module
from .common import SEED, BadInput, cache_option, device_option, emit_json, parse_seeds, threads_option


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML experiment config (default: built-in defaults, 784-100-10 ReLU, SGD lr 0.1, 10 epochs).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.optimizer.lr=0.05 (repeatable).",
)
@click.option("--data", help="Training CSV (shortcut for --set data.train=PATH).")
@click.option("--epochs", type=click.IntRange(1, 100_000), help="Number of epochs (shortcut for --set train.epochs=N).")
@click.option("--seed", type=SEED, help="Random seed for init, split, shuffling and dropout.")
@click.option(
    "--gradient",
    type=click.Choice(["backprop", "numerical"]),
    help="How gradients are computed; 'numerical' is the (very) slow baseline.",
)
@click.option(
    "--train-rows",
    type=click.IntRange(1),
    help="Train on the first N rows only (shortcut for "
    "--set data.train_rows=N; a small subset makes overfitting visible).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run folder (default: runs/<config name>, or runs/<name>-2, -3, ... when that holds a run). "
    "A folder that already holds a run is refused unless --overwrite is given.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Let --out replace the run already there; the old files go only once the new run has "
    "finished its first epoch, so a run that fails sooner leaves them as they were.",
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    help="Continue the interrupted run in this folder; only train.epochs and train.early_stopping may change.",
)
@click.option(
    "--seeds",
    help="Train an ensemble: one member per seed (e.g. 0,1,2,3,4), each a run folder of its "
    "own inside --out (default runs/<name>-ensemble), which --model then takes as one model. "
    "--resume on that folder finishes every member; --resume with --seeds adds the seeds it lacks.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    metavar="N",
    help="With --seeds (or --resume of an ensemble): train N members at once, each in a process of its "
    "own, the --threads shared out among them. Much of an epoch runs on one core whatever the "
    "threads, so on two cores --jobs 2 trains an ensemble sooner (measured in docs/kaggle.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final figures as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@device_option
@cache_option
@threads_option
def fit(
    config_path,
    overrides,
    data,
    epochs,
    seed,
    gradient,
    train_rows,
    out,
    overwrite,
    resume,
    seeds,
    jobs,
    as_json,
    quiet,
    device,
    no_cache,
):
    """Train a network as a config describes; write model.npz, metrics.csv and config.yaml.

    \b
    Example:
      bp-train fit --config configs/default.yaml --set train.optimizer.lr=0.05 --epochs 5
    """
    from ..training.memory import check_training_memory
    from ..training.runfolder import open_run_folder
    from ..training.trainer import fit as run_fit
    from ..training.trainer import training_digits

    overrides = with_shortcuts(overrides, data, epochs, seed, gradient, train_rows, device)
    from ..files.ensemble import is_ensemble

    if seeds is not None or (resume and is_ensemble(Path(resume))):
        return fit_seeds(config_path, overrides, seed, out, overwrite, resume, seeds, jobs, as_json, quiet, no_cache)
    if jobs > 1:
        raise BadInput(
            f"--jobs {jobs} trains the members of an ensemble side by side; it goes with --seeds, or "
            "with --resume of an ensemble folder"
        )
    config = single_run_config(config_path, overrides, out, overwrite, resume)
    array_module(config.train.device)  # no CuPy or no GPU: say so now, before any folder is touched
    check_training_memory(config)  # and a network too large for this machine's memory
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    warning = learning_rate_warning(config, overrides)
    if warning:
        click.echo(warning, err=True)
    threads = click.get_current_context().meta["threads"]
    log(f"training {config.name} with {threads.describe()}")
    if config.train.gradient == "numerical":
        log("numerical gradients: 2 forward passes per parameter entry, in float64 -- expect a long wait")
    digits = training_digits(config, cache=not no_cache)  # checked before a folder is named or written
    with open_run_folder(out, config.name, overwrite=overwrite, resume=resume) as folder:
        log(f"writing {folder.target}" + (" (replacing its run after the first epoch)" if folder.pending else ""))
        summary = run_fit(
            config, folder, resume=bool(resume), cache=not no_cache, show_progress=not quiet, log=log, digits=digits
        )
    summary["threads"] = threads.threads
    report_run(summary, as_json)


def with_shortcuts(overrides, data, epochs, seed, gradient, train_rows, device) -> list[str]:
    """--set assignments, then those the shortcut options (--data, --epochs, ...) stand for."""
    shortcuts = {"data.train": data, "train.epochs": epochs, "train.seed": seed, "train.gradient": gradient}
    shortcuts.update({"data.train_rows": train_rows, "train.device": device})
    return [*overrides, *(f"{key}={value}" for key, value in shortcuts.items() if value is not None)]


def report_run(summary: dict, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
    else:
        val = f", validation accuracy {summary['val_accuracy']:.4f}" if summary["val_accuracy"] is not None else ""
        click.echo(
            f"saved {summary['model']} (epoch {summary['best_epoch']}{val}); "
            f"metrics in {Path(summary['run_dir']) / 'metrics.csv'}"
        )


def single_run_config(config_path, overrides: list[str], out, overwrite: bool, resume) -> Config:
    """The config of a new run, or of the run --resume names (its own, with what may change taken from
    the command line)."""
    from ..training.checkpoint import resume_config, saved_config

    if not resume:
        return load_config(config_path, overrides)
    if out and Path(out) != Path(resume):
        raise BadInput(f"--out {out} and --resume {resume} name different run folders; give one")
    if overwrite:
        raise BadInput("--overwrite and --resume contradict each other: a resumed run keeps its folder")
    base = None if config_path else saved_config(Path(resume)).to_dict()
    return resume_config(Path(resume), load_config(config_path, overrides, base=base))


def fit_seeds(config_path, overrides, seed, out, overwrite, resume, seeds, jobs, as_json, quiet, no_cache):
    """`fit --seeds` and `fit --resume ENSEMBLE`: the members one after another, or `jobs` at a time
    (training/members.py)."""
    from ..files.ensemble import MAX_MEMBERS, read_manifest
    from ..training.members import fit_ensemble
    from ..training.memory import check_training_memory
    from ..training.trainer import training_digits

    if seed is not None:
        raise BadInput("--seed and --seeds contradict each other: an ensemble's members take the seeds of --seeds")
    chosen = None if seeds is None else parse_seeds(seeds, most=MAX_MEMBERS)  # always given without --resume
    if resume:
        if out or overwrite:
            raise BadInput(
                f"--resume {resume} finishes the ensemble in that folder (and adds the members of "
                "--seeds it lacks); --out and --overwrite do not go with it"
            )
        base = None if config_path else read_manifest(Path(resume))["config"]
        config = load_config(config_path, overrides, base=base)
    else:
        config = load_config(config_path, overrides)
        jobs = min(jobs, len(chosen))
    array_module(config.train.device)
    if jobs > 1 and config.train.device != "cpu":
        raise BadInput(
            f"--jobs {jobs} shares out a CPU's cores; on a GPU (train.device: "
            f"{config.train.device}) train the members one after another"
        )
    check_training_memory(config, at_once=jobs)
    training_digits(config, cache=not no_cache)  # bad data is said now, before the ensemble's folder is written
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    threads = click.get_current_context().meta["threads"]
    summary = fit_ensemble(
        config,
        chosen,
        out,
        overwrite,
        resume,
        cache=not no_cache,
        show_progress=not quiet,
        log=log,
        threads=threads.describe(),
        jobs=jobs,
        threads_per_job=max(1, threads.threads // jobs),
    )
    report_ensemble(summary, as_json)


def report_ensemble(summary: dict, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    for member in summary["members"]:
        val = f", validation accuracy {member['val_accuracy']:.4f}" if member["val_accuracy"] is not None else ""
        click.echo(
            f"  seed {member['seed']}: {member['model']} ({member['epochs']} epoch{'' if member['epochs'] == 1 else 's'}, "
            f"{member['train_seconds']:.0f} s{val})"
        )
    spread = ""
    if summary["val_accuracy_mean"] is not None:
        spread = f"; their validation accuracy {summary['val_accuracy_mean']:.4f}" + (
            f" +- {summary['val_accuracy_std']:.4f}" if summary["val_accuracy_std"] is not None else ""
        )
    click.echo(
        f"saved the ensemble {summary['ensemble']} ({len(summary['members'])} members{spread}); use it as "
        f"--model {summary['ensemble']}"
    )


@click.command()
@click.argument("experiment", type=click.Choice(["optimizers", "init", "batchnorm", "dropout"]))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="The Kaggle-format train.csv(.gz).")
@click.option(
    "--seeds",
    default="0,1",
    show_default=True,
    help="Seeds to train each variant with; two or more show the noise a difference must beat.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the runs and compare.png (default: runs/compare-EXPERIMENT); its earlier runs are replaced.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@threads_option
def compare(experiment, data, seeds, out, as_json):
    """Run one of the textbook's chapter-6 experiments: the same 5-layer network trained a few ways (the
    optimizers, the weight initialization, BatchNorm, dropout), each with every seed; overlay the first
    seed's learning curves in compare.png and print each variant's final accuracies and their spread.

    \b
    Example:
      bp-train compare init --data data/train.csv
    """
    from ..training.experiments import format_summary, run_experiment

    chosen = parse_seeds(seeds)
    folder = Path(out or f"runs/compare-{experiment}")
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    import sys

    # Each run's epochs as a progress bar, on a terminal only: a minute or two per variant otherwise silent.
    summary = run_experiment(experiment, data, folder, chosen, log=log, show_progress=sys.stderr.isatty())
    try:
        from ..views.plots import plot_experiment

        summary["figure"] = str(plot_experiment(summary, folder, chosen[0]))
    except BPTrainError as exc:  # matplotlib missing: the figures still stand
        log(f"no compare.png: {exc}")
    if as_json:
        emit_json(summary)
    else:
        click.echo(format_summary(summary) + (f"\nwrote {summary['figure']}" if "figure" in summary else ""))
