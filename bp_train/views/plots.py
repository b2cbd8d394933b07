"""Pictures of a run: learning curves, the validation confusion matrix, and the digits it gets wrong.

matplotlib is an optional extra (`.venv/bin/python -m pip install -e '.[plot]'`, included by `make install`); everything
else in bp-train works without it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..config.safeyaml import short
from ..errors import BPTrainError

GRID_MAX = 25  # misclassified digits shown, at most (a 5 x 5 grid)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BPTrainError(
            "plotting needs matplotlib, an optional extra: from the bp-train checkout, "
            ".venv/bin/python -m pip install -e '.[plot]' "
            "(make install includes it); `bp-train show RUN_DIR` prints digits as text"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise BPTrainError(f"{path}: not found; is {run_dir} a folder written by bp-train fit?")
    from ..training.trainer import METRIC_COLUMNS

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or list(rows[0]) != METRIC_COLUMNS:
        raise BPTrainError(
            f"{path}: expected a header '{','.join(METRIC_COLUMNS)}' and one row per epoch, as fit writes it"
        )
    for line, row in enumerate(rows, start=2):
        for column in METRIC_COLUMNS:
            value = row.get(column)
            if value == "" and column.startswith("val_"):
                row[column] = None  # a run without a validation split
                continue
            try:
                float(value)
            except (TypeError, ValueError):
                raise BPTrainError(f"{path}: line {line}, column '{column}': {short(value)} is not a number") from None
    return rows


def _save(figure, path: Path, plt) -> Path:
    from ..files.store import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        figure.savefig(out, format="png", dpi=100)
    plt.close(figure)
    return path


def learning_curves(rows: list[dict], plt):
    """Train and validation loss and accuracy per epoch, side by side."""
    epochs = [int(r["epoch"]) for r in rows]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, metric, title in (
        (loss_axes, "loss", "Loss per epoch"),
        (accuracy_axes, "accuracy", "Accuracy per epoch"),
    ):
        axes.plot(epochs, [float(r[f"train_{metric}"]) for r in rows], "o-", label="train")
        if rows and rows[0][f"val_{metric}"]:
            axes.plot(epochs, [float(r[f"val_{metric}"]) for r in rows], "s-", label="validation")
        axes.set(title=title, xlabel="epoch", ylabel=metric)
        whole_epochs(axes)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return figure


def confusion_heatmap(confusion: np.ndarray, plt):
    """counts[true, predicted] as a heat map with the counts written in. The diagonal (the right answers)
    is left out of the colour scale, grey: it holds nearly every digit, and in one scale with it the
    mistakes -- the point of the picture -- would all be the same pale blue."""
    figure, axes = plt.subplots(figsize=(6, 5))
    diagonal = np.eye(len(confusion), dtype=bool)
    mistakes = np.ma.masked_where(diagonal, confusion)
    colours = plt.get_cmap("Reds").with_extremes(bad="#d9d9d9")
    worst = max(int(mistakes.max()) if mistakes.count() else 0, 1)
    image = axes.imshow(mistakes, cmap=colours, vmin=0, vmax=worst)
    for (i, j), count in np.ndenumerate(confusion):
        axes.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if not diagonal[i, j] and count > worst / 2 else "black",
        )
    axes.set(
        title="Confusion matrix (validation): the mistakes in colour",
        xlabel="predicted digit",
        ylabel="true digit",
        xticks=range(len(confusion)),
        yticks=range(len(confusion)),
    )
    figure.colorbar(image, ax=axes, label="digits misread (diagonal, the right answers, in grey)")
    figure.tight_layout()
    return figure


def weight_tiles(network) -> tuple[np.ndarray, str]:
    """(tiles, what they are): the first layer's weights as pictures, one per unit or filter. A dense
    layer's unit sees the whole image, so its 784 weights are a 28x28 picture of what excites it; a
    convolution's filter is a small kernel (its first input channel, for a colour image)."""
    W = np.asarray(network.params["W1"])
    if W.ndim == 4:  # (KH, KW, C, F)
        return np.moveaxis(
            W[:, :, 0, :], -1, 0
        ), f"first convolution: {W.shape[3]} filters of {W.shape[0]}x{W.shape[1]}"
    channels, height, width = network.input_shape
    if channels * height * width != W.shape[0] or channels != 1:
        raise BPTrainError(f"the first layer's {W.shape[0]} inputs are not a one-channel image; no pictures to draw")
    return W.T.reshape(-1, height, width), f"first dense layer: {W.shape[1]} units, each a {height}x{width} picture"


def whole_epochs(axes) -> None:
    """Ticks at whole epochs only: a run of 3 epochs has no epoch 1.5."""
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def weights_grid(tiles: np.ndarray, title: str, plt, limit: int = 100):
    """Each tile in its own symmetric scale, red positive, blue negative: the pattern each unit looks for."""
    shown = tiles[:limit]
    side = int(np.ceil(np.sqrt(len(shown))))
    figure, axes_grid = plt.subplots(side, side, figsize=(0.9 * side + 1, 0.9 * side + 1), squeeze=False)
    for axes in axes_grid.flat:
        axes.axis("off")
    for axes, tile in zip(axes_grid.flat, shown):
        bound = float(np.abs(tile).max()) or 1.0
        axes.imshow(tile, cmap="RdBu_r", vmin=-bound, vmax=bound)
    figure.suptitle(f"{title}" + (f" ({limit} of {len(tiles)} shown)" if len(tiles) > limit else ""), fontsize=9)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    # The colour key: every tile has its own scale, so the key gives the scale's ends, not numbers.
    key = figure.add_axes((0.2, 0.04, 0.6, 0.025))
    shown_scale = plt.cm.ScalarMappable(norm=plt.Normalize(-1, 1), cmap="RdBu_r")
    bar = figure.colorbar(shown_scale, cax=key, orientation="horizontal", ticks=[-1, 0, 1])
    bar.ax.set_xticklabels(["most negative", "0", "most positive"], fontsize=7)
    bar.set_label("weight, each tile in its own scale (its largest |w| at the ends)", fontsize=7)
    return figure


def plot_weights(network, path: Path) -> Path:
    tiles, title = weight_tiles(network)
    return save_figure(lambda plt: weights_grid(tiles, title, plt), path)


def misclassified_grid(items: list[tuple[np.ndarray, str]], plt):
    """Up to GRID_MAX digits with their captions ('7 as 1': a true 7 predicted as 1)."""
    shown = items[:GRID_MAX]
    side = max(1, int(np.ceil(np.sqrt(len(shown)))))
    figure, axes_grid = plt.subplots(side, side, figsize=(1.6 * side, 1.8 * side), squeeze=False)
    for axes in axes_grid.flat:
        axes.axis("off")
    for axes, (image, caption) in zip(axes_grid.flat, shown):
        axes.imshow(image.reshape(28, 28), cmap="gray_r")
        axes.set_title(caption.replace("true ", "").replace(", predicted ", " as "), fontsize=8)
    figure.suptitle(
        f"Misclassified validation digits (true as predicted), {len(shown)} shown"
        if shown
        else "No misclassified validation digits: every one is classified correctly"
    )
    figure.tight_layout()
    return figure


def plot_run(run_dir: Path, cache: bool = True, log=print) -> list[Path]:
    """Write learning_curves.png, confusion.png and misclassified.png into the run folder; a run without a
    validation split gets its learning curves only, and `log` says why."""
    from ..training.report import confusion_matrix, misclassified, run_validation

    plt = _pyplot()
    rows = read_metrics(run_dir)
    network, _, val, predicted = run_validation(run_dir, cache)
    written = [_save(learning_curves(rows, plt), run_dir / "learning_curves.png", plt)]
    if val is None:
        log(
            f"{run_dir}: no validation split (data.val_fraction is 0): drew the training curves only; a confusion "
            "matrix and misclassified digits need held-out rows"
        )
        return written
    confusion = confusion_matrix(val.labels.astype(np.intp), predicted, network.sizes[-1])
    return written + [
        _save(confusion_heatmap(confusion, plt), run_dir / "confusion.png", plt),
        _save(misclassified_grid(misclassified(val, predicted, GRID_MAX), plt), run_dir / "misclassified.png", plt),
    ]


def augmented_grid(samples, plt):
    """One row per training digit: the original, then its distortions."""
    rows, columns = len(samples), 1 + len(samples[0][1])
    figure, axes_grid = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.5 * rows), squeeze=False)
    for row, (original, versions) in zip(axes_grid, samples):
        for axes, image, title in zip(row, [original, *versions], ["original"] + ["distorted"] * len(versions)):
            axes.imshow(image.reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
            axes.set_title(title, fontsize=7)
            axes.axis("off")
    figure.suptitle("Training digits and the distortions train.augment draws")
    figure.tight_layout()
    return figure


def plot_augmented(samples, path: Path) -> Path:
    plt = _pyplot()
    return _save(augmented_grid(samples, plt), path, plt)


def save_figure(make_figure, path: Path) -> Path:
    """Draw with `make_figure(plt)` and save the figure as a PNG, atomically."""
    plt = _pyplot()
    return _save(make_figure(plt), path, plt)


def compare_runs(runs: list[tuple[str, list[dict]]], plt):
    """Learning curves of several runs on one figure: loss and accuracy per epoch, one colour per run,
    validation solid and training dashed (so overfitting shows as a gap). The legend sits below the two
    panels, where it can cover no curve: one entry per run, and one for each line style."""
    from matplotlib.lines import Line2D

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4.6))
    handles = []
    any_val = False
    for index, (name, rows) in enumerate(runs):
        colour = f"C{index % 10}"
        epochs = [int(r["epoch"]) for r in rows]
        for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            has_val = bool(rows and rows[0][f"val_{metric}"])
            any_val = any_val or has_val
            axes.plot(epochs, [float(r[f"train_{metric}"]) for r in rows], "--" if has_val else "-", color=colour)
            if has_val:
                axes.plot(epochs, [float(r[f"val_{metric}"]) for r in rows], "-", color=colour)
        handles.append(Line2D([], [], color=colour, label=name))
    if any_val:
        handles += [
            Line2D([], [], color="black", label="validation"),
            Line2D([], [], color="black", linestyle="--", label="training"),
        ]
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        axes.set(title=f"{metric.capitalize()} per epoch", xlabel="epoch", ylabel=metric)
        whole_epochs(axes)
        axes.grid(alpha=0.3)
    columns = min(len(handles), 4)
    figure.legend(handles=handles, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.045 * -(-len(handles) // columns) + 0.02, 1, 1))
    return figure


def plot_experiment(summary: dict, folder: Path, seed: int) -> Path:
    """compare.png of a chapter-6 experiment: each variant's learning curves (the first seed), the caption
    as the title."""
    from ..training.experiments import variant_folder

    runs = [(label, read_metrics(variant_folder(folder, label, seed))) for label in summary["variants"]]

    def draw(plt):
        figure = compare_runs(runs, plt)
        figure.suptitle(summary["caption"], fontsize=9, wrap=True)
        bottom = figure.subplotpars.bottom
        figure.subplots_adjust(top=0.84, bottom=bottom)
        return figure

    return save_figure(draw, folder / "compare.png")


def plot_comparison(run_dirs: list[Path], path: Path) -> Path:
    """One figure overlaying the learning curves of `run_dirs`, each labelled with its folder's name."""
    runs = [(run_dir.name, read_metrics(run_dir)) for run_dir in run_dirs]
    return save_figure(lambda plt: compare_runs(runs, plt), path)


def activation_histograms(layers: list[tuple[str, np.ndarray]], title: str, plt):
    """The distribution of each hidden layer's activations for one batch, side by side (textbook ch. 6)."""
    figure, axes_row = plt.subplots(1, len(layers), figsize=(2.6 * len(layers), 3), squeeze=False)
    for axes, (name, values) in zip(axes_row[0], layers):
        axes.hist(values.ravel(), bins=30, range=(float(values.min()), float(values.max()) or 1.0))
        axes.set_title(name, fontsize=9)
        axes.set_yticks([])
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def hidden_activations(network, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The output of every activation layer (ReLU, sigmoid, tanh) for the batch `x`, in evaluation mode."""
    from ..nn.network import ACTIVATIONS

    network.set_flag("train", False)
    out, layers = np.asarray(x, dtype=network.dtype), []
    for name, layer in network.layers.items():
        out = layer.forward(out)
        if isinstance(layer, tuple(ACTIVATIONS.values())):
            layers.append((name, out))
    return layers


def readable_log_axis(axes, plt) -> None:
    """A log x axis whose labels cannot run together: at most four decades labelled, none of the minor
    ticks (whose '2x10^-3'-style labels overlapped into one string on a narrow range), tilted."""
    from matplotlib.ticker import LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(numticks=4))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.tick_params(axis="x", labelrotation=30)


def tune_plots(trials: list[dict], metric: str, log_params: set[str], folder: Path) -> list[Path]:
    """history.png (every trial's metric in order; pruned ones at the value they were stopped at; the best so
    far as a line) and params.png (each sampled value against the metric) for `bp-train tune`. `trials`
    holds {number, outcome, value, params} per finished trial."""
    plt = _pyplot()
    higher_is_better = metric == "val_accuracy"
    styles = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:gray")}
    shown = [t for t in trials if t["value"] is not None and t["outcome"] in styles]
    figure, axes = plt.subplots(figsize=(7, 4))
    for outcome, (marker, colour) in styles.items():
        points = [(t["number"], t["value"]) for t in shown if t["outcome"] == outcome]
        if points:
            axes.scatter(*zip(*points), marker=marker, color=colour, label=outcome)
    complete = sorted((t["number"], t["value"]) for t in shown if t["outcome"] == "complete")
    if complete:
        best = np.maximum.accumulate if higher_is_better else np.minimum.accumulate
        axes.step(
            [n for n, _ in complete], best([v for _, v in complete]), where="post", color="tab:red", label="best so far"
        )
    axes.set(title="Optimization history", xlabel="trial", ylabel=metric)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    if shown:  # an interrupted study may have no trial with a value yet: an empty plot, no legend
        axes.legend()
    figure.tight_layout()
    written = [_save(figure, folder / "history.png", plt)]

    names = sorted({k for t in shown for k in t["params"]})
    if names:
        figure, axes_row = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
        for axes, name in zip(axes_row[0], names):
            for outcome, (marker, colour) in styles.items():
                points = [
                    (t["params"][name], t["value"]) for t in shown if t["outcome"] == outcome and name in t["params"]
                ]
                if points:
                    xs, ys = zip(*points)
                    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
                    axes.scatter(
                        xs if numeric else [str(x) for x in xs], ys, marker=marker, color=colour, label=outcome
                    )
            if name in log_params:
                readable_log_axis(axes, plt)
            axes.set(xlabel=name, ylabel=metric)
            axes.grid(alpha=0.3)
        axes_row[0][0].legend()
        figure.suptitle("Each sampled value against the metric")
        figure.tight_layout()
        written.append(_save(figure, folder / "params.png", plt))
    return written
