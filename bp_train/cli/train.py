"""`bp-train fit`, `evaluate` and `predict`: train a network, score it, label a CSV with it.

Each command parses its options and hands over to the part that does the work (training/, files/)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np

from ..config import learning_rate_warning, load_config
from ..data.digits import load_digits, to_float
from ..errors import BPTrainError
from ..files.store import atomic_path
from ..nn.backend import array_module
from .common import (
    SEED,
    BadInput,
    cache_option,
    device_option,
    emit_json,
    models_option,
    parse_seeds,
    refuse_overwriting,
    threads_option,
)


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML experiment config (default: built-in defaults, 784-100-10 ReLU, SGD lr 0.1, 10 epochs).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.optimizer.lr=0.05 (repeatable).")
@click.option("--data", help="Training CSV (shortcut for --set data.train=PATH).")
@click.option("--epochs", type=click.IntRange(1, 100_000), help="Number of epochs (shortcut for --set train.epochs=N).")
@click.option("--seed", type=SEED, help="Random seed for init, split, shuffling and dropout.")
@click.option("--gradient", type=click.Choice(["backprop", "numerical"]),
              help="How gradients are computed; 'numerical' is the (very) slow baseline.")
@click.option("--train-rows", type=click.IntRange(1), help="Train on the first N rows only (shortcut for "
              "--set data.train_rows=N; a small subset makes overfitting visible).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Run folder (default: runs/<config name>, or runs/<name>-2, -3, ... when that holds a run). "
                   "A folder that already holds a run is refused unless --overwrite is given.")
@click.option("--overwrite", is_flag=True,
              help="Let --out replace the run already there; the old files go only once the new run has "
                   "finished its first epoch, so a run that fails sooner leaves them as they were.")
@click.option("--resume", type=click.Path(file_okay=False),
              help="Continue the interrupted run in this folder; only train.epochs and "
                   "train.early_stopping may change.")
@click.option("--seeds", help="Train an ensemble: one member per seed (e.g. 0,1,2,3,4), each a run folder of its "
              "own inside --out (default runs/<name>-ensemble), which --model then takes as one model. "
              "--resume on that folder finishes every member; --resume with --seeds adds the seeds it lacks.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="With --seeds (or --resume of an ensemble): train N members at once, each in a process of its "
                   "own, the --threads shared out among them. Much of an epoch runs on one core whatever the "
                   "threads, so on two cores --jobs 2 trains an ensemble sooner (measured in the README).")
@click.option("--json", "as_json", is_flag=True, help="Print the final figures as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@device_option
@cache_option
@threads_option
def fit(config_path, overrides, data, epochs, seed, gradient, train_rows, out, overwrite, resume, seeds, jobs,
        as_json, quiet, device, no_cache):
    """Train a network as a config describes; write model.npz, metrics.csv and config.yaml.

    \b
    Example:
      bp-train fit --config configs/default.yaml --set train.optimizer.lr=0.05 --epochs 5
    """
    from ..training.memory import check_training_memory
    from ..training.runfolder import open_run_folder
    from ..training.trainer import fit as run_fit
    from ..training.trainer import resume_config, saved_config

    overrides = list(overrides)
    for key, value in (("data.train", data), ("train.epochs", epochs), ("train.seed", seed),
                       ("train.gradient", gradient), ("data.train_rows", train_rows), ("train.device", device)):
        if value is not None:
            overrides.append(f"{key}={value}")
    from ..files.ensemble import is_ensemble
    if seeds is not None or (resume and is_ensemble(Path(resume))):
        return fit_seeds(config_path, overrides, seed, out, overwrite, resume, seeds, jobs, as_json, quiet, no_cache)
    if jobs > 1:
        raise BadInput(f"--jobs {jobs} trains the members of an ensemble side by side; it goes with --seeds, or "
                       "with --resume of an ensemble folder")
    if resume:
        if out and Path(out) != Path(resume):
            raise BadInput(f"--out {out} and --resume {resume} name different run folders; give one")
        if overwrite:
            raise BadInput("--overwrite and --resume contradict each other: a resumed run keeps its folder")
        base = None if config_path else saved_config(Path(resume)).to_dict()
        config = resume_config(Path(resume), load_config(config_path, overrides, base=base))
    else:
        config = load_config(config_path, overrides)
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
    with open_run_folder(out, config.name, overwrite=overwrite, resume=resume) as folder:
        log(f"writing {folder.target}" + (" (replacing its run after the first epoch)" if folder.pending else ""))
        summary = run_fit(config, folder, resume=bool(resume), cache=not no_cache, show_progress=not quiet, log=log)
    summary["threads"] = threads.threads
    if as_json:
        emit_json(summary)
    else:
        val = f", validation accuracy {summary['val_accuracy']:.4f}" if summary["val_accuracy"] is not None else ""
        click.echo(f"saved {summary['model']} (epoch {summary['best_epoch']}{val}); "
                   f"metrics in {Path(summary['run_dir']) / 'metrics.csv'}")


def fit_seeds(config_path, overrides, seed, out, overwrite, resume, seeds, jobs, as_json, quiet, no_cache):
    """`fit --seeds` and `fit --resume ENSEMBLE`: the members one after another, or `jobs` at a time
    (training/members.py)."""
    from ..files.ensemble import MAX_MEMBERS, read_manifest
    from ..training.members import fit_ensemble
    from ..training.memory import check_training_memory

    if seed is not None:
        raise BadInput("--seed and --seeds contradict each other: an ensemble's members take the seeds of --seeds")
    chosen = None if seeds is None else parse_seeds(seeds, most=MAX_MEMBERS)  # always given without --resume
    if resume:
        if out or overwrite:
            raise BadInput(f"--resume {resume} finishes the ensemble in that folder (and adds the members of "
                           "--seeds it lacks); --out and --overwrite do not go with it")
        base = None if config_path else read_manifest(Path(resume))["config"]
        config = load_config(config_path, overrides, base=base)
    else:
        config = load_config(config_path, overrides)
        jobs = min(jobs, len(chosen))
    array_module(config.train.device)
    if jobs > 1 and config.train.device != "cpu":
        raise BadInput(f"--jobs {jobs} shares out a CPU's cores; on a GPU (train.device: "
                       f"{config.train.device}) train the members one after another")
    check_training_memory(config, at_once=jobs)
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    threads = click.get_current_context().meta["threads"]
    summary = fit_ensemble(config, chosen, out, overwrite, resume, cache=not no_cache, show_progress=not quiet,
                           log=log, threads=threads.describe(), jobs=jobs,
                           threads_per_job=max(1, threads.threads // jobs))
    if as_json:
        emit_json(summary)
        return
    for member in summary["members"]:
        val = f", validation accuracy {member['val_accuracy']:.4f}" if member["val_accuracy"] is not None else ""
        click.echo(f"  seed {member['seed']}: {member['model']} ({member['epochs']} epoch{'' if member['epochs'] == 1 else 's'}, "
                   f"{member['train_seconds']:.0f} s{val})")
    spread = ""
    if summary["val_accuracy_mean"] is not None:
        spread = f"; their validation accuracy {summary['val_accuracy_mean']:.4f}" + (
            f" +- {summary['val_accuracy_std']:.4f}" if summary["val_accuracy_std"] is not None else "")
    click.echo(f"saved the ensemble {summary['ensemble']} ({len(summary['members'])} members{spread}); use it as "
               f"--model {summary['ensemble']}")


def _labelled(data, labels, cache):
    """Images and labels from a labelled CSV, or from an unlabelled CSV plus an ImageId,Label file."""
    digits = load_digits(data, require_labels=labels is None, cache=cache)
    if labels is None:
        return digits.images, digits.labels
    from ..data.digits import read_labels
    return digits.images, read_labels(labels, len(digits))


@click.command()
@models_option(required=False)
@click.option("--data", type=click.Path(dir_okay=False), help="Labelled digit CSV (plain or .gz).")
@click.option("--labels", type=click.Path(dir_okay=False),
              help="For an unlabelled CSV: a file 'ImageId,Label' with its labels (as data fetch writes).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="A run folder: score its model on the run's own validation split (instead of --model/--data).")
@click.option("--json", "as_json", is_flag=True, help="Print every figure as one JSON object.")
@device_option
@cache_option
@threads_option
def evaluate(model_paths, tta, data, labels, run_dir, as_json, device, no_cache):
    """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix of a model on a CSV, or of a
    run on its own validation split (the only labelled hold-out a Kaggle entrant has). With several
    models (or an ensemble folder), each member's accuracy too, and the ensemble's figures.

    Warns when a noticeable share of the rows are rows the model was trained on.

    \b
    Examples:
      bp-train evaluate --run runs/default
      bp-train evaluate --model runs/best/model.npz --data data/test.csv --labels data/test_labels.csv
      bp-train evaluate --model runs/fast-cnn-ensemble --tta --data data/test.csv --labels data/test_labels.csv
    """
    from ..data.digits import seen_in_training
    from ..files.ensemble import is_ensemble
    from ..training.report import evaluate as run_evaluate
    from ..training.report import format_report, validation_rows
    from ..training.voting import load_ensemble

    if run_dir:
        if model_paths or data or labels:
            raise BadInput("--run scores a run on its own validation split; give either --run or --model/--data")
        if is_ensemble(Path(run_dir)):
            raise BadInput(f"{run_dir}: an ensemble's members split their rows by their own seeds, so no row is "
                           "held out from all of them; score it on a labelled file with --model and --data")
        model = load_ensemble([run_dir], device=device or "cpu", tta=tta)
        val = validation_rows(model.members[0].config, cache=not no_cache)
        if val is None:
            raise BadInput(f"{run_dir}: the run has no validation split (data.val_fraction is 0); evaluate "
                           "its model.npz on a labelled file with --model and --data instead")
        images, truth, source = val.images, val.labels, f"{run_dir} (validation split of {val.source})"
    else:
        if not (model_paths and data):
            raise BadInput("give --model and --data (and --labels for an unlabelled CSV), or --run RUN_DIR")
        model = load_ensemble(model_paths, device=device or "cpu", tta=tta)
        images, truth = _labelled(data, labels, not no_cache)
        source = data
    result = run_evaluate(model, images, truth, source)
    for member in model.members:
        if member.meta.get("train_fingerprint") is None:
            continue
        seen = seen_in_training(images, member.meta["train_fingerprint"])
        result["rows_seen_in_training"] = max(seen, result.get("rows_seen_in_training", 0))
        if seen >= max(1, 0.01 * len(images)):
            click.echo(f"warning: {seen:,} of the {len(images):,} rows ({seen / len(images):.1%}) are rows "
                       f"{'this model' if len(model.members) == 1 else member.name} was trained on; its accuracy on "
                       "them overstates how well it generalizes", err=True)
    if as_json:
        emit_json(result)
    else:
        click.echo(format_report(result))


@click.command()
@models_option(required=True)
@click.option("--data", type=click.Path(dir_okay=False),
              help="Digit CSV to label (a 'label' column, if present, is ignored).")
@click.option("--image", "images", multiple=True, type=click.Path(),
              help="A picture of a digit (PNG, JPEG, BMP, GIF, WebP) or a folder of them, prepared as MNIST's "
                   "digits were (see bp-train show --image); repeatable. Instead of --data.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="With --data: where to write 'ImageId,Label' (default submission.csv), the Kaggle format. "
                   "With --image: a CSV 'file,label,p0..p9'.")
@click.option("--proba", type=click.Path(dir_okay=False),
              help="With --data: also write the class probabilities, one column per digit, to this CSV.")
@click.option("--save-inputs", type=click.Path(file_okay=False),
              help="With --image: write the 28x28 picture the network saw for each image, as PNG, into this folder.")
@click.option("--json", "as_json", is_flag=True, help="With --image: print a list of {file, label, probabilities}.")
@device_option
@cache_option
@threads_option
def predict(model_paths, tta, data, images, out, proba, save_inputs, as_json, device, no_cache):
    """Label every row of a digit CSV and write a Kaggle submission; or read pictures of digits.

    \b
    Examples:
      bp-train predict --model runs/cnn/model.npz --data data/test.csv --out submission.csv
      bp-train predict --model runs/cnn/model.npz --image my-seven.png --image scans/
      bp-train predict --model runs/fast-cnn-ensemble --tta --data data/test.csv   (an ensemble, with TTA)
    """
    if bool(data) == bool(images):
        raise BadInput("give --data CSV (a Kaggle file) or --image PATH (pictures), one of the two")
    if images:
        if proba:
            raise BadInput("--proba goes with --data; with --image, --out CSV holds the probabilities")
        return predict_images(model_paths, tta, images, out, save_inputs, as_json, device)
    if save_inputs or as_json:
        raise BadInput("--save-inputs and --json go with --image")
    predict_csv(model_paths, tta, data, out or "submission.csv", proba, device, no_cache)


def model_inputs(model) -> dict[str, str]:
    """The model files an output must never replace (an ensemble folder's: each member's), for
    refuse_overwriting."""
    if len(model.members) == 1:
        return {"model file (--model)": str(model.members[0].file)}
    return {f"model file {m.file} (--model)": str(m.file) for m in model.members}


def predict_csv(model_paths, tta, data, out, proba, device, no_cache):
    from ..data.digits import resolve
    from ..training.voting import load_ensemble

    model = load_ensemble(model_paths, device=device or "cpu", tta=tta)
    refuse_overwriting({"--out": out, "--proba": proba},
                       {"input file (--data)": str(resolve(data)), **model_inputs(model)})
    digits = load_digits(data, cache=not no_cache)
    if digits.images.shape[1] != model.network.sizes[0]:
        raise BadInput(f"{data}: rows have {digits.images.shape[1]} pixels but the model expects "
                       f"{model.network.sizes[0]}")
    probabilities = model.probabilities(to_float(digits.images, model.network.dtype))
    predicted = probabilities.argmax(axis=1)
    ids = np.arange(1, len(predicted) + 1)
    # Both files are written to temporaries and renamed only when both are whole: a full disk or Ctrl-C
    # half way leaves neither new beside an old other.
    with atomic_path(out) as out_tmp, (atomic_path(proba) if proba else nullcontext()) as proba_tmp:
        write_csv(out_tmp, out, "ImageId,Label", np.column_stack([ids, predicted]), "%d")
        if proba:
            header = "ImageId," + ",".join(f"p{d}" for d in range(probabilities.shape[1]))
            write_csv(proba_tmp, proba, header, np.column_stack([ids, probabilities]),
                      ["%d"] + ["%.6f"] * probabilities.shape[1])
    click.echo(f"wrote {len(predicted)} predictions to {out}" + (f" and probabilities to {proba}" if proba else ""))


def predict_images(model_paths, tta, images, out, save_inputs, as_json, device):
    """Every picture prepared and read before anything is written: a bad one leaves no file behind."""
    from ..data.images import image_files, prepare
    from ..training.recognize import check_fits, describe, recognize
    from ..training.voting import load_ensemble

    files = image_files(images)
    model = load_ensemble(model_paths, device=device or "cpu", tta=tta)
    refuse_overwriting({"--out": out}, {**model_inputs(model), **{f"image {f}": str(f) for f in files}})
    check_fits(model.network, model_paths[0])
    results = recognize(model, [prepare(f) for f in files])
    if out:
        import csv
        import io
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["file", "label", *(f"p{d}" for d in range(10))])
        writer.writerows([r["file"], r["label"], *(f"{p:.6f}" for p in r["probabilities"])] for r in results)
        from ..files.store import write_text
        write_text(out, text.getvalue())
    if save_inputs:
        save_pictures(results, Path(save_inputs))
    if as_json:
        emit_json([{k: r[k] for k in ("file", "label", "probabilities", "notes")} for r in results])
    else:
        click.echo("\n".join(describe(r) for r in results))


def save_pictures(results, folder: Path) -> None:
    """Each 28x28 input as an 8-bit PNG named after its picture, written atomically; pictures of one name
    from different folders (a/seven.png, b/seven.png) get seven.png, seven-2.png, ... in the order read."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for result in results:
        stem = Path(result["file"]).stem
        name, number = f"{stem}.png", 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}.png"
        taken.add(name)
        target = folder / name
        with atomic_path(target) as tmp:
            pixels = (np.asarray(result["input"]) * 255).round().astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp, format="PNG")


def write_csv(tmp, destination, header: str, table: np.ndarray, fmt) -> None:
    """Write a CSV to the temporary file `tmp` (renamed to `destination` by the caller); a failure names
    the destination, not the temporary."""
    try:
        np.savetxt(tmp, table, fmt=fmt, delimiter=",", header=header, comments="")
    except OSError as exc:
        raise BPTrainError(f"{destination}: {exc.strerror or exc}; nothing was written") from None


@click.command()
@click.argument("experiment", type=click.Choice(["optimizers", "init", "batchnorm", "dropout"]))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="The Kaggle-format train.csv(.gz).")
@click.option("--seeds", default="0,1", show_default=True,
              help="Seeds to train each variant with; two or more show the noise a difference must beat.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the runs and compare.png "
              "(default: runs/compare-EXPERIMENT); its earlier runs are replaced.")
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
    summary = run_experiment(experiment, data, folder, chosen, log=log)
    try:
        from ..views.plots import plot_experiment
        summary["figure"] = str(plot_experiment(summary, folder, chosen[0]))
    except BPTrainError as exc:  # matplotlib missing: the figures still stand
        log(f"no compare.png: {exc}")
    if as_json:
        emit_json(summary)
    else:
        click.echo(format_summary(summary) + (f"\nwrote {summary['figure']}" if "figure" in summary else ""))
