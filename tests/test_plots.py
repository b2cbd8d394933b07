"""Plots show what they claim: the right axes and titles, the right number of digits, real PNG files."""

import builtins

import numpy as np
import pytest

from bp_train.views import plots
from bp_train.errors import BPTrainError

from conftest import run_cli

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
    rows = [{"epoch": str(e), "train_loss": str(1 / e), "val_loss": str(1.2 / e),
             "train_accuracy": str(1 - 0.1 / e), "val_accuracy": str(1 - 0.2 / e)} for e in (1, 2, 3)]
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
    assert axes.get_title() == "Confusion matrix (validation)"
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
    with pytest.raises(BPTrainError, match=r"pip install 'bp-train\[plot\]'"):
        plots._pyplot()
