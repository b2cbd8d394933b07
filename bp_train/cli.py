"""The `bp-train` command line. Exit codes: 0 ok, 1 a check failed, 2 bad usage or bad input, 130 interrupted.

This file holds the commands that train and measure; cli_views.py those that look at data, runs and graphs,
and cli_common.py what they share."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import click
import numpy as np

from . import __version__
from .backend import array_module, to_host
from .cli_common import (EXIT_CHECK_FAILED, SEED, BadInput, FiniteFloat, Group, cache_option, device_option,
                         emit_json, refuse_overwriting, threads_option)
from .cli_tune import tune
from .cli_views import explain, plot, show
from .config import learning_rate_warning, load_config
from .data import load_digits, to_float
from .errors import BPTrainError
from .store import atomic_path, load_model


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bp-train")
def main():
    """Train a handwritten-digit recognizer written from scratch in NumPy, by backpropagation.

    \b
    Examples:
      bp-train fit --config configs/default.yaml          train, write runs/default/ (then -2, -3...)
      bp-train fit --config configs/deep.yaml --epochs 3  override a setting
      bp-train evaluate --run runs/default                score the run's own validation split
      bp-train evaluate --model runs/default/model.npz --data data/test.csv --labels data/test_labels.csv
      bp-train predict --model runs/default/model.npz --data data/test.csv --out submission.csv
      bp-train gradcheck --config configs/default.yaml    backprop vs. numerical gradients
      bp-train compare-speed                              how much faster backprop is
      bp-train data fetch                                 download MNIST as Kaggle-style CSVs

    Exit codes: 0 ok, 1 a check failed, 2 bad usage or bad input, 130 interrupted.
    """


@main.command()
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
@click.option("--json", "as_json", is_flag=True, help="Print the final figures as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@device_option
@cache_option
@threads_option
def fit(config_path, overrides, data, epochs, seed, gradient, train_rows, out, overwrite, resume, as_json, quiet,
        device, no_cache):
    """Train a network as a config describes; write model.npz, metrics.csv and config.yaml.

    \b
    Example:
      bp-train fit --config configs/default.yaml --set train.optimizer.lr=0.05 --epochs 5
    """
    from .runfolder import open_run_folder
    from .train import fit as run_fit, resume_config, saved_config

    overrides = list(overrides)
    for key, value in (("data.train", data), ("train.epochs", epochs), ("train.seed", seed),
                       ("train.gradient", gradient), ("data.train_rows", train_rows), ("train.device", device)):
        if value is not None:
            overrides.append(f"{key}={value}")
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
        val = f", validation accuracy {summary['val_accuracy']:.4f}" if summary["val_accuracy"] else ""
        click.echo(f"saved {summary['model']} (epoch {summary['best_epoch']}{val}); "
                   f"metrics in {Path(summary['run_dir']) / 'metrics.csv'}")


def _labelled(data, labels, cache):
    """Images and labels from a labelled CSV, or from an unlabelled CSV plus an ImageId,Label file."""
    digits = load_digits(data, require_labels=labels is None, cache=cache)
    if labels is None:
        return digits.images, digits.labels
    from .data import read_labels
    return digits.images, read_labels(labels, len(digits))


@main.command()
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="A model.npz written by fit.")
@click.option("--data", type=click.Path(dir_okay=False), help="Labelled digit CSV (plain or .gz).")
@click.option("--labels", type=click.Path(dir_okay=False),
              help="For an unlabelled CSV: a file 'ImageId,Label' with its labels (as data fetch writes).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="A run folder: score its model on the run's own validation split (instead of --model/--data).")
@click.option("--json", "as_json", is_flag=True, help="Print every figure as one JSON object.")
@device_option
@cache_option
@threads_option
def evaluate(model_path, data, labels, run_dir, as_json, device, no_cache):
    """Loss, accuracy, per-class precision/recall/F1 and the confusion matrix of a model on a CSV, or of a
    run on its own validation split (the only labelled hold-out a Kaggle entrant has).

    Warns when a noticeable share of the rows are rows the model was trained on.

    \b
    Examples:
      bp-train evaluate --run runs/default
      bp-train evaluate --model runs/best/model.npz --data data/test.csv --labels data/test_labels.csv
    """
    from .data import seen_in_training
    from .report import evaluate as run_evaluate, format_report, validation_rows

    if run_dir:
        if model_path or data or labels:
            raise BadInput("--run scores a run on its own validation split; give either --run or --model/--data")
        network, config, meta = load_model(Path(run_dir) / "model.npz", device=device or "cpu")
        val = validation_rows(config, cache=not no_cache)
        if val is None:
            raise BadInput(f"{run_dir}: the run has no validation split (data.val_fraction is 0); evaluate "
                           "its model.npz on a labelled file with --model and --data instead")
        images, truth, source = val.images, val.labels, f"{run_dir} (validation split of {val.source})"
    else:
        if not (model_path and data):
            raise BadInput("give --model and --data (and --labels for an unlabelled CSV), or --run RUN_DIR")
        network, _, meta = load_model(model_path, device=device or "cpu")
        images, truth = _labelled(data, labels, not no_cache)
        source = data
    result = run_evaluate(network, images, truth, source)
    if meta.get("train_fingerprint") is not None:
        seen = seen_in_training(images, meta["train_fingerprint"])
        result["rows_seen_in_training"] = seen
        if seen >= max(1, 0.01 * len(images)):
            click.echo(f"warning: {seen:,} of the {len(images):,} rows ({seen / len(images):.1%}) are rows this "
                       "model was trained on; its accuracy on them overstates how well it generalizes", err=True)
    if as_json:
        emit_json(result)
    else:
        click.echo(format_report(result))


@main.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False),
              help="A model.npz written by fit.")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="Digit CSV to label (a 'label' column, if present, is ignored).")
@click.option("--out", default="submission.csv", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write 'ImageId,Label' (ImageId from 1), the Kaggle submission format.")
@click.option("--proba", type=click.Path(dir_okay=False),
              help="Also write the class probabilities, one column per digit, to this CSV.")
@device_option
@cache_option
@threads_option
def predict(model_path, data, out, proba, device, no_cache):
    """Label every row of a digit CSV and write a Kaggle submission."""
    from .data import resolve

    refuse_overwriting({"--out": out, "--proba": proba},
                       {"input file (--data)": str(resolve(data)), "model file (--model)": model_path})
    network, _, _ = load_model(model_path, device=device or "cpu")
    digits = load_digits(data, cache=not no_cache)
    if digits.images.shape[1] != network.sizes[0]:
        raise BadInput(f"{data}: rows have {digits.images.shape[1]} pixels but the model expects {network.sizes[0]}")
    scores = to_host(network.predict(to_float(digits.images, network.dtype), batch_size=10_000))
    predicted = scores.argmax(axis=1)
    ids = np.arange(1, len(predicted) + 1)
    # Both files are written to temporaries and renamed only when both are whole: a full disk or Ctrl-C
    # half way leaves neither new beside an old other.
    with atomic_path(out) as out_tmp, (atomic_path(proba) if proba else nullcontext()) as proba_tmp:
        write_csv(out_tmp, out, "ImageId,Label", np.column_stack([ids, predicted]), "%d")
        if proba:
            header = "ImageId," + ",".join(f"p{d}" for d in range(scores.shape[1]))
            write_csv(proba_tmp, proba, header, np.column_stack([ids, network.probabilities(scores.astype(np.float64))]),
                      ["%d"] + ["%.6f"] * scores.shape[1])
    click.echo(f"wrote {len(predicted)} predictions to {out}" + (f" and probabilities to {proba}" if proba else ""))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Network to check (default: built-in defaults, 784-100-10 ReLU).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("--batch", default=4, show_default=True, type=click.IntRange(2),
              help="Rows in the batch (>= 2, so batch-dependent layers are really exercised).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed for weights and rows.")
@click.option("--tol", default=1e-6, show_default=True, type=FiniteFloat(0.0),
              help="Pass when every parameter's relative error is below this.")
@click.option("--h", "step", default=1e-5, show_default=True, type=FiniteFloat(0.0),
              help="Step of the central differences.")
@click.option("--entries", metavar="N|all",
              help="Difference N seeded random entries per parameter, or 'all' (default: all where that takes "
                   "under about a minute, else a sample sized to take about a minute).")
@click.option("--dtype", default="float64", show_default=True, type=click.Choice(["float64", "float32"]),
              help="Precision of the check; float32 is refused, as its central differences are noise.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@device_option
@cache_option
@threads_option
def gradcheck(config_path, overrides, batch, seed, tol, step, entries, dtype, as_json, device, no_cache):
    """Check backprop's gradient against central differences, parameter by parameter.

    Exit code 0 when every parameter's relative error |a-n| / max(1e-8, |a|+|n|) (norms over the
    parameter's entries) is below --tol, 1 otherwise.

    \b
    Example:
      bp-train gradcheck --config configs/sigmoid.yaml --batch 3
    """
    from tqdm import tqdm

    from .data import sample_rows
    from .gradient import gradcheck as run_gradcheck, require_float64
    from .network import build_network

    overrides = list(overrides) + ([f"train.device={device}"] if device else [])
    config = load_config(config_path, overrides)
    network = build_network(config, seed=seed, dtype=dtype, device=config.train.device)
    require_float64(network.params["W1"], "gradcheck")
    x, t, described = sample_rows(config.data.train, batch * 10, seed, cache=not no_cache)
    sampled_note = None
    if entries is None:
        entries, sampled_note = default_entries(network, x[:batch], t[:batch])
    elif entries == "all":
        entries = None
    else:
        try:
            entries = int(entries)
            assert entries >= 1
        except (ValueError, AssertionError):
            raise BadInput(f"--entries {entries!r}: expected a whole number >= 1 or 'all'") from None
    total = sum(min(entries or p.size, p.size) for p in network.params.values())
    with tqdm(total=total, unit="entry", desc="numerical gradient", disable=as_json, leave=False) as bar:
        result = run_gradcheck(network, x, t, batch=batch, tol=tol, h=step, entries=entries, seed=seed,
                               progress=bar.update)
    result.update(config=config.name, layers=config.describe_layers(), data=described, sampled=sampled_note)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"gradcheck {config.name} {config.describe_layers()}: batch of {result['batch']} from {described}, "
                   f"float64, h = {step:g}")
        if sampled_note:
            click.echo(sampled_note)
        if result["replaced_near_kink"]:
            click.echo(f"({result['replaced_near_kink']} rows replaced: a ReLU input lay within "
                       f"{10 * step:g} of the kink at 0, where the loss has no derivative)")
        click.echo(f"{'param':<8}{'shape':<14}{'checked':>9}{'rel error':>12}{'max entry':>12}"
                   f"{'mean |a-n|':>12}  result")
        for row in result["params"]:
            click.echo(f"{row['param']:<8}{'x'.join(map(str, row['shape'])):<14}{row['checked']:>9}"
                       f"{row['rel_error']:>12.2e}{row['max_entry_rel_error']:>12.2e}{row['mean_abs_diff']:>12.2e}"
                       f"  {'PASS' if row['passed'] else 'FAIL'}")
        failed = [r["param"] for r in result["params"] if not r["passed"]]
        click.echo(f"tolerance {tol:g}: " + ("PASS, backprop agrees with numerical differentiation" if not failed
                                             else "FAIL in " + ", ".join(failed)))
    sys.exit(0 if result["passed"] else EXIT_CHECK_FAILED)


GRADCHECK_BUDGET = 60.0  # seconds: beyond this, gradcheck samples entries unless told --entries all


def default_entries(network, x, t) -> tuple[int | None, str | None]:
    """None (every entry) when that takes under GRADCHECK_BUDGET seconds; else a per-parameter sample
    sized to take about that long, and a line saying so. Each entry costs two forward passes."""
    import time

    with network.frozen():
        network.loss(x, t, train=True)
        start = time.perf_counter()
        for _ in range(3):
            network.loss(x, t, train=True)
        per_entry = 2 * (time.perf_counter() - start) / 3
    total = network.parameter_count
    if per_entry * total <= GRADCHECK_BUDGET:
        return None, None
    entries = max(10, int(GRADCHECK_BUDGET / per_entry / len(network.params)))
    return entries, (f"(sampled: {entries} seeded random entries per parameter; all {total:,} entries would take "
                     f"about {per_entry * total / 60:.0f} minutes. --entries all checks every one)")


def parse_sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",")]
    except ValueError:
        raise BadInput(f"--sizes {value!r}: expected whole numbers separated by commas, e.g. 10,50,100") from None
    if not sizes or min(sizes) < 1:
        raise BadInput(f"--sizes {value!r}: every size must be at least 1")
    return sizes


@main.command("compare-speed")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Network to measure (default: built-in defaults, 784-100-10 ReLU); its hidden layers are resized.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set data.train=data/train.csv.")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1), help="Rows per gradient step.")
@click.option("--steps", default=3, show_default=True, type=click.IntRange(0),
              help="Training steps each way, to show that the losses match (0: skip).")
@click.option("--sizes", default="10,50,100", show_default=True, help="Hidden-layer widths to compare.")
@click.option("--budget", default=10.0, show_default=True, type=FiniteFloat(0.0),
              help="Seconds of numerical differencing per size before sampling entries and extrapolating.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@device_option
@cache_option
@threads_option
def compare_speed(config_path, overrides, batch, steps, sizes, budget, as_json, device, no_cache):
    """Time one gradient by backprop and by numerical differentiation, for growing networks.

    \b
    Example:
      bp-train compare-speed --config configs/default.yaml --sizes 10,50,100,200
    """
    from .data import sample_rows
    from .speed import EPOCH_ROWS, compare_speed as run, human_seconds, with_hidden_size

    overrides = list(overrides) + ([f"train.device={device}"] if device else [])
    config = load_config(config_path, overrides)
    sizes = parse_sizes(sizes)
    for size in sizes:  # every width checked (memory included) before the first is timed
        with_hidden_size(config, size)
    x, t, described = sample_rows(config.data.train, batch, config.train.seed, cache=not no_cache)
    if not as_json:
        click.echo(f"one gradient step on a batch of {len(x)} ({described}), float64, same weights and seed")
        click.echo(f"{'layers':<20}{'params':>9}{'backprop':>12}{'numerical':>13}{'speed-up':>11}"
                   f"   one epoch of {EPOCH_ROWS:,} rows: backprop / numerical")

    def show(row):
        if as_json:
            return
        mark = "*" if row["extrapolated"] else " "
        click.echo(f"{row['layers']:<20}{row['parameters']:>9,}{row['backprop_ms']:>9.2f} ms"
                   f"{row['numerical_s']:>11.2f} s{mark}{row['speedup']:>10,.0f}x   "
                   f"{human_seconds(row['epoch_backprop_s'])} / {human_seconds(row['epoch_numerical_s'])}")

    result = run(config, x, t, sizes, steps=steps, budget=budget, log=show)
    result["data"] = described
    if as_json:
        emit_json(result)
        return
    if any(r["extrapolated"] for r in result["sizes"]):
        click.echo("* numerical time extrapolated linearly from a timed random sample of entries "
                   "(each entry costs the same two forward passes)")
    check = result["training_check"]
    if check:
        click.echo(f"{check['steps']} training steps each way (hidden {result['training_check_hidden_size']}): "
                   f"backprop losses {', '.join(f'{v:.6f}' for v in check['backprop_losses'])}; numerical "
                   f"{', '.join(f'{v:.6f}' for v in check['numerical_losses'])}; "
                   f"max difference {check['max_loss_difference']:.1e}")


@main.command()
@click.option("--data", "data_path", type=click.Path(dir_okay=False), required=True,
              help="Labelled training CSV (the 42,000-row Kaggle train.csv).")
@click.option("--config", "config_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Configs to time (repeatable; default: the built-in 784-100-10 and a 784-800-800-10 network).")
@click.option("--epochs", default=4, show_default=True, type=click.IntRange(2),
              help="Epochs per config; the first warms up, the fastest of the rest counts.")
@click.option("--busy", is_flag=True,
              help="Also time each config while another process keeps one core busy, and report busy/idle.")
@click.option("--threads", type=click.IntRange(1), metavar="N",
              help="BLAS threads for every measurement (default: chosen from the free cores, as fit does).")
@click.option("--profile", is_flag=True, help="Also say where each config's epoch goes, layer kind by layer kind.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@device_option
def bench(data_path, config_paths, epochs, busy, threads, profile, as_json, device):
    """Training speed against this machine's own float32 matmul peak, measured in the same run; with
    --busy, also on a machine where another process keeps one core busy."""
    from .data import load_digits
    from .speed import bench_training, busy_neighbour, load_benchmarks

    figures = load_benchmarks(data_path, log=None if as_json else click.echo)
    digits = load_digits(data_path, require_labels=True)
    on = ["data.train=" + data_path] + ([f"train.device={device}"] if device else [])
    configs = [load_config(p, on) for p in config_paths] or [
        load_config(None, on),
        load_config(None, on + ["name=mlp-800-800",
                           "model.hidden=[{size: 800}, {size: 800}]"])]
    figures["training"] = []
    for config in configs:
        row = bench_training(config, digits, epochs, threads)
        if not as_json:
            click.echo(f"{row['config']:<20}{row['layers']:<42}{row['seconds_per_epoch']:6.2f} s/epoch"
                       f"{row['samples_per_second']:>10,.0f} samples/s{row['gflops']:7.1f} GFLOP/s"
                       f"  matmul peak {row['matmul_gflops']:.1f}  ratio {row['ratio']:.2f}  {row['threads']} thread(s)"
                       + (f"  augmentation {row['augment_share']:.0%} of the epoch" if row["augment_share"] else ""))
        if profile and not as_json:
            click.echo(f"{'':<20}where the epoch goes: " + ", ".join(
                f"{name} {share:.0%}" for name, share in row["profile"].items() if share >= 0.01))
        if busy:
            with busy_neighbour():
                loaded = bench_training(config, digits, epochs, threads)
                # what NumPy does by default: a BLAS thread on every core, busy or not
                naive = bench_training(config, digits, 2, row["threads"]) if loaded["threads"] != row["threads"] else loaded
            row["busy"], row["busy_all_cores"] = loaded, naive
            row["busy_over_idle"] = loaded["seconds_per_epoch"] / row["seconds_per_epoch"]
            if not as_json:
                click.echo(f"{'':<20}{'one core kept busy:':<42}{loaded['seconds_per_epoch']:6.2f} s/epoch"
                           f"{loaded['samples_per_second']:>10,.0f} samples/s  busy/idle {row['busy_over_idle']:.2f}"
                           f"  {loaded['threads']} thread(s) ({loaded['threads_reason']}); with {naive['threads']} "
                           f"thread(s) as NumPy would: {naive['seconds_per_epoch']:.2f} s/epoch")
        figures["training"].append(row)
    if as_json:
        emit_json(figures)


@main.group(cls=Group)
def data():
    """Get digit data: download MNIST, or convert IDX files, to Kaggle-style CSV."""


@data.command()
@click.option("--dest", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Folder for mnist/*.gz and the CSVs.")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="A folder URL holding the four .gz files (http(s):// or file://), tried before the "
                   "public mirrors (repeatable).")
@click.option("--no-default-mirrors", is_flag=True, help="Use only the --mirror URLs.")
def fetch(dest, mirrors, no_default_mirrors):
    """Download the official MNIST files, verify their MD5s, write train.csv, test.csv, test_labels.csv.

    \b
    Example (offline, from a local copy):
      bp-train data fetch --mirror file:///path/to/mnist/ --no-default-mirrors
    """
    from tqdm import tqdm

    from .mnist import MIRRORS, fetch as run_fetch

    if no_default_mirrors and not mirrors:
        raise BadInput("--no-default-mirrors needs at least one --mirror URL")
    for url in mirrors:
        if not url.startswith(("http://", "https://", "file://")):
            raise BadInput(f"--mirror {url!r}: expected an http://, https:// or file:// URL")
    chosen = list(mirrors) + ([] if no_default_mirrors else list(MIRRORS))
    bar = lambda total, name: tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False)
    run_fetch(dest, chosen, progress=bar, log=click.echo)


@data.command()
@click.option("--images", required=True, type=click.Path(dir_okay=False), help="IDX images file (.gz or raw).")
@click.option("--labels", type=click.Path(dir_okay=False), help="IDX labels file; omit for an unlabelled CSV.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV to write.")
def convert(images, labels, out):
    """Convert an IDX image (and label) file, MNIST or any MNIST-format set, to a Kaggle-style CSV."""
    from .mnist import read_pair, write_digit_csv

    refuse_overwriting({"--out": out}, {"images file (--images)": images, "labels file (--labels)": labels})
    pixels, digits = read_pair(images, labels)
    write_digit_csv(out, pixels, digits)
    click.echo(f"wrote {out}: {len(pixels):,} rows" + (" with labels" if digits is not None else ""))


def write_csv(tmp, destination, header: str, table: np.ndarray, fmt) -> None:
    """Write a CSV to the temporary file `tmp` (renamed to `destination` by the caller); a failure names
    the destination, not the temporary."""
    try:
        np.savetxt(tmp, table, fmt=fmt, delimiter=",", header=header, comments="")
    except OSError as exc:
        raise BPTrainError(f"{destination}: {exc.strerror or exc}; nothing was written") from None


# The commands that look at data, runs and graphs live in cli_views.py.
main.add_command(plot)
main.add_command(show)
main.add_command(explain)

# `tune`, the hyper-parameter search, lives in cli_tune.py (Optuna is an optional extra).
main.add_command(tune)


if __name__ == "__main__":
    sys.exit(main())
