"""`bp-train evaluate` and `predict`: score a model (or an ensemble) on labelled digits, label a CSV or
pictures with it.

Each command parses its options and hands over to the part that does the work (training/, files/, data/)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np

from ..data.digits import load_digits, to_float
from ..errors import BPTrainError
from ..files.store import atomic_path
from .common import BadInput, cache_option, device_option, emit_json, models_option, refuse_overwriting, threads_option


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
@click.option(
    "--labels",
    type=click.Path(dir_okay=False),
    help="For an unlabelled CSV: a file 'ImageId,Label' with its labels (as data fetch writes).",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False),
    help="A run folder: score its model on the run's own validation split (instead of --model/--data).",
)
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
    from ..data.fingerprints import seen_in_training
    from ..files.ensemble import is_ensemble
    from ..training.report import evaluate as run_evaluate
    from ..training.report import format_report, validation_rows
    from ..training.voting import load_ensemble

    if run_dir:
        if model_paths or data or labels:
            raise BadInput("--run scores a run on its own validation split; give either --run or --model/--data")
        if is_ensemble(Path(run_dir)):
            raise BadInput(
                f"{run_dir}: an ensemble's members split their rows by their own seeds, so no row is "
                "held out from all of them; score it on a labelled file with --model and --data"
            )
        model = load_ensemble([run_dir], device=device or "cpu", tta=tta)
        val = validation_rows(model.members[0].config, cache=not no_cache)
        if val is None:
            raise BadInput(
                f"{run_dir}: the run has no validation split (data.val_fraction is 0); evaluate "
                "its model.npz on a labelled file with --model and --data instead"
            )
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
            click.echo(
                f"warning: {seen:,} of the {len(images):,} rows ({seen / len(images):.1%}) are rows "
                f"{'this model' if len(model.members) == 1 else member.name} was trained on; its accuracy on "
                "them overstates how well it generalizes",
                err=True,
            )
    if as_json:
        emit_json(result)
    else:
        click.echo(format_report(result))


@click.command()
@models_option(required=True)
@click.option(
    "--data", type=click.Path(dir_okay=False), help="Digit CSV to label (a 'label' column, if present, is ignored)."
)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(),
    help="A picture of a digit (PNG, JPEG, BMP, GIF, WebP) or a folder of them, prepared as MNIST's "
    "digits were (see bp-train show --image); repeatable. Instead of --data.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="With --data: where to write 'ImageId,Label' (default submission.csv), the Kaggle format. "
    "With --image: a CSV 'file,label,p0..p9'.",
)
@click.option(
    "--proba",
    type=click.Path(dir_okay=False),
    help="With --data: also write the class probabilities, one column per digit, to this CSV.",
)
@click.option(
    "--save-inputs",
    type=click.Path(file_okay=False),
    help="With --image: write the 28x28 picture the network saw for each image, as PNG, into this folder.",
)
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
    refuse_overwriting(
        {"--out": out, "--proba": proba}, {"input file (--data)": str(resolve(data)), **model_inputs(model)}
    )
    digits = load_digits(data, cache=not no_cache)
    if digits.images.shape[1] != model.network.sizes[0]:
        raise BadInput(
            f"{data}: rows have {digits.images.shape[1]} pixels but the model expects {model.network.sizes[0]}"
        )
    with model.reading_bar(len(digits.images)) as bar:
        probabilities = model.probabilities(to_float(digits.images, model.network.dtype), progress=bar.update)
    predicted = probabilities.argmax(axis=1)
    ids = np.arange(1, len(predicted) + 1)
    # Both files are written to temporaries and renamed only when both are whole: a full disk or Ctrl-C
    # half way leaves neither new beside an old other.
    with atomic_path(out) as out_tmp, atomic_path(proba) if proba else nullcontext() as proba_tmp:
        write_csv(out_tmp, out, "ImageId,Label", np.column_stack([ids, predicted]), "%d")
        if proba:
            header = "ImageId," + ",".join(f"p{d}" for d in range(probabilities.shape[1]))
            write_csv(
                proba_tmp,
                proba,
                header,
                np.column_stack([ids, probabilities]),
                ["%d"] + ["%.6f"] * probabilities.shape[1],
            )
    click.echo(f"wrote {len(predicted)} predictions to {out}" + (f" and probabilities to {proba}" if proba else ""))


def predict_images(model_paths, tta, images, out, save_inputs, as_json, device):
    """Every picture prepared and read before anything is written: a bad one leaves no file behind."""
    from ..data.images import image_files, prepare
    from ..training.recognize import check_fits, describe, recognize
    from ..training.voting import load_ensemble

    files = image_files(images)
    names = input_names(files)
    if save_inputs:
        check_save_folder(Path(save_inputs), names)
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
        save_pictures(results, Path(save_inputs), names)
    if as_json:
        emit_json([{k: r[k] for k in ("file", "label", "probabilities", "notes")} for r in results])
    else:
        click.echo("\n".join(describe(r) for r in results))


def input_names(files) -> list[str]:
    """The PNG name of each picture's 28x28: its own stem; pictures of one name from different folders
    (a/seven.png, b/seven.png) get seven.png, seven-2.png, ... in the order read."""
    taken: list[str] = []
    for file in files:
        stem = Path(file).stem
        name, number = f"{stem}.png", 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}.png"
        taken.append(name)
    return taken


def check_save_folder(folder: Path, names: list[str]) -> None:
    """Before any work: --save-inputs writes new files only. Anything already there under a name it would
    write -- the user's own picture, an earlier run's, a link to elsewhere -- is left alone, and said."""
    import os

    if os.path.lexists(folder) and not folder.is_dir():
        raise BadInput(f"--save-inputs {folder}: exists and is not a folder")
    for name in names:
        if os.path.lexists(folder / name):
            raise BadInput(
                f"--save-inputs {folder}: {folder / name} exists (your own picture, or an earlier run's?); "
                "it is left alone: give an empty or new folder"
            )


def save_pictures(results, folder: Path, names: list[str]) -> None:
    """Each 28x28 input as an 8-bit PNG, written atomically under the names check_save_folder cleared."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for result, name in zip(results, names):
        with atomic_path(folder / name) as tmp:
            pixels = (np.asarray(result["input"]) * 255).round().astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp, format="PNG")


def write_csv(tmp, destination, header: str, table: np.ndarray, fmt) -> None:
    """Write a CSV to the temporary file `tmp` (renamed to `destination` by the caller); a failure names
    the destination, not the temporary."""
    try:
        np.savetxt(tmp, table, fmt=fmt, delimiter=",", header=header, comments="")
    except OSError as exc:
        raise BPTrainError(f"{destination}: {exc.strerror or exc}; nothing was written") from None
