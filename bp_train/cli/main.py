"""The `bp-train` command line. Exit codes: 0 ok, 1 a check failed, 2 bad usage or bad input, 130 interrupted.

This file is the group; the commands live one family to a file: train.py (fit, compare), predict.py (evaluate, predict),
measure.py (gradcheck, compare-speed, bench), data.py (data fetch, convert), views.py (plot, show,
explain), exercise.py (exercise), serve.py (serve), export.py (export), tune.py (tune); common.py holds what they share."""

from __future__ import annotations

import click

from .. import __version__
from .common import Group
from .data import data
from .exercise import exercise
from .export import export
from .measure import bench, compare_speed, gradcheck
from .predict import evaluate, predict
from .serve import serve
from .train import compare, fit
from .tune import tune
from .views import explain, plot, show


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


for command in (
    fit,
    evaluate,
    predict,
    compare,
    gradcheck,
    compare_speed,
    bench,
    data,
    plot,
    show,
    explain,
    exercise,
    serve,
    export,
    tune,
):
    main.add_command(command)
