"""Plots show what they claim: the right axes and titles, the right number of digits, real PNG files."""

import builtins

import numpy as np
import pytest
from conftest import run_cli

from bp_train.errors import BPTrainError
from bp_train.views import plots

matplotlib = pytest.importorskip("matplotlib", reason="plots need the optional matplotlib extra")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_plot_command_writes_three_pngs_of_the_expected_size(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run_dir, "--quiet").exit_code == 0
    result = run_cli("plot", run_dir)
    assert result.exit_code == 0, result.output
    assert png_size(run_dir / "learning_curves.png") == (1000, 400)  # 10 x 4 inches at 100 dpi
    assert png_size(run_dir / "confusion.png") == (600, 500)
    width, height = png_size(run_dir / "misclassified.png")
    assert width > 100 and height > 100


def test_learning_curves_have_loss_and_accuracy_axes_with_both_curves():
    rows = [
        {
            "epoch": str(e),
            "train_loss": str(1 / e),
            "val_loss": str(1.2 / e),
            "train_accuracy": str(1 - 0.1 / e),
            "val_accuracy": str(1 - 0.2 / e),
        }
        for e in (1, 2, 3)
    ]
    figure = plots.learning_curves(rows, plt)
    loss_axes, accuracy_axes = figure.axes
    assert loss_axes.get_title() == "Loss per epoch" and accuracy_axes.get_title() == "Accuracy per epoch"
    assert [line.get_label() for line in loss_axes.get_lines()] == ["train", "validation"]
    assert list(loss_axes.get_lines()[1].get_ydata()) == pytest.approx([1.2, 0.6, 0.4])
    plt.close(figure)


def test_confusion_heatmap_shows_every_count():
    confusion = np.arange(100).reshape(10, 10)
    figure = plots.confusion_heatmap(confusion, plt)
    axes = figure.axes[0]
    assert axes.get_title() == "Confusion matrix (validation): the mistakes in colour"
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted digit", "true digit")
    assert sorted(int(t.get_text()) for t in axes.texts) == list(range(100))
    assert np.array_equal(axes.images[0].get_array(), confusion)
    plt.close(figure)


@pytest.mark.parametrize("count, side", [(1, 1), (7, 3), (25, 5), (40, 5)])
def test_misclassified_grid_holds_the_right_number_of_digits(count, side):
    items = [(np.full(784, i, dtype=np.uint8), f"true {i % 10}, predicted {(i + 1) % 10}") for i in range(count)]
    figure = plots.misclassified_grid(items, plt)
    with_digits = [a for a in figure.axes if a.images]
    assert len(figure.axes) == side * side and len(with_digits) == min(count, plots.GRID_MAX)
    assert with_digits[0].get_title() == "0 as 1"
    assert with_digits[0].images[0].get_array().shape == (28, 28)
    plt.close(figure)


def test_without_matplotlib_the_message_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(BPTrainError, match=r"\.venv/bin/python -m pip install -e '\.\[plot\]'"):
        plots._pyplot()


def test_the_confusion_matrix_leaves_the_diagonal_out_of_its_colour_scale():
    confusion = np.diag([980, 1130, 1000]) + np.array([[0, 3, 1], [7, 0, 0], [2, 12, 0]])
    figure = plots.confusion_heatmap(confusion, plt)
    image = figure.axes[0].images[0]
    shown = image.get_array()
    assert shown.mask.tolist() == np.eye(3, dtype=bool).tolist()  # the right answers: grey, not coloured
    assert image.get_clim() == (0, 12)  # the worst mistake, not 1130, is the darkest red
    assert sorted(t.get_text() for t in figure.axes[0].texts) == sorted(str(c) for c in confusion.ravel())
    plt.close(figure)


@pytest.mark.parametrize(
    "config_overrides, tiles_shape",
    [
        (["model.hidden=[{size: 12}]"], (12, 28, 28)),
        (["model.conv=[{filters: 6, kernel: 5}]", "model.hidden=[{size: 8}]"], (6, 5, 5)),
    ],
)
def test_plot_weights_draws_each_first_layer_unit_or_filter_as_its_own_weights(config_overrides, tiles_shape, tmp_path):
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(None, config_overrides)
    network = build_network(config, seed=3)
    tiles, title = plots.weight_tiles(network)
    W = network.params["W1"]
    assert tiles.shape == tiles_shape
    expected = W.T.reshape(-1, 28, 28) if W.ndim == 2 else np.moveaxis(W[:, :, 0, :], -1, 0)
    assert np.array_equal(tiles, expected)
    assert np.array_equal(
        tiles[1], W[:, 1].reshape(28, 28) if W.ndim == 2 else W[:, :, 0, 1]
    )  # unit 1 is W1's column 1
    figure = plots.weights_grid(tiles, title, plt)
    drawn = [axes.images[0].get_array() for axes in figure.axes if axes.images]
    assert len(drawn) == tiles_shape[0] and all(np.array_equal(a, t) for a, t in zip(drawn, tiles))
    for axes, tile in zip((a for a in figure.axes if a.images), tiles):  # each in its own symmetric scale
        assert axes.images[0].get_clim() == pytest.approx((-np.abs(tile).max(), np.abs(tile).max()))
    plt.close(figure)
    save_model(tmp_path / "model.npz", network, config.to_dict())
    result = run_cli("plot", "--weights", tmp_path / "model.npz", "--out", tmp_path / "w.png")
    assert result.exit_code == 0 and png_size(tmp_path / "w.png")[0] > 100


def test_tune_params_plot_labels_a_narrow_log_range_legibly(tmp_path):
    trials = [
        {"number": i, "outcome": "complete", "value": 0.9 + 0.001 * i, "params": {"train.optimizer.lr": lr}}
        for i, lr in enumerate([0.011, 0.013, 0.017, 0.022, 0.03, 0.045, 0.06, 0.08])
    ]
    captured = {}
    original = plots._save

    def keep(figure, path, plt_):
        captured[path.name] = figure
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        labels = [t for t in figure.axes[0].get_xticklabels(which="both") if t.get_text() and t.get_visible()]
        captured["boxes"] = (
            [t.get_window_extent(renderer) for t in labels] if path.name == "params.png" else captured.get("boxes")
        )
        return original(figure, path, plt_)

    plots._save, saved = keep, plots._save
    try:
        plots.tune_plots(trials, "val_accuracy", {"train.optimizer.lr"}, tmp_path)
    finally:
        plots._save = saved
    boxes = captured["boxes"]
    assert boxes and all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_curves_mark_whole_epochs_only_and_the_weights_carry_a_colour_key():
    rows = [
        {"epoch": str(e), "train_loss": "1", "train_accuracy": "0.5", "val_loss": "1", "val_accuracy": "0.5"}
        for e in (1, 2, 3)
    ]
    for figure in (plots.learning_curves(rows, plt), plots.compare_runs([("a", rows)], plt)):
        figure.canvas.draw()
        for axes in figure.axes:
            ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
        plt.close(figure)
    tiles = np.random.default_rng(0).normal(size=(9, 28, 28))
    figure = plots.weights_grid(tiles, "first layer", plt)
    key = figure.axes[-1]  # the colour bar's own axes, below the tiles
    assert [t.get_text() for t in key.get_xticklabels()] == ["most negative", "0", "most positive"]
    assert "own scale" in key.get_xlabel()
    plt.close(figure)
