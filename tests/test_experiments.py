"""The chapter-6 experiments teach what their captions say, by more than the noise of two seeds: the
numbers behind compare-init, compare-batchnorm and compare-dropout, trained here on the Kaggle-format data."""

import json

import pytest
from conftest import REPLICA_TRAIN, needs_shared, run_cli

from bp_train.training.experiments import run_experiment

# Each experiment as `make compare-NAME` runs it -- the same networks, optimizer and two seeds -- on
# fewer rows, where its effect still stands out of the seeds' noise by a margin (measured: init and
# batchnorm on 20,000 of the 42,000 rows, 1.8x to 7x the noise; dropout's 1,000 training rows scored on
# 3,000 validation rows instead of 9,000, for 80 epochs instead of 100, 2.3x to 3.5x). The full-size
# figures are in docs/learning.md.
SMALLER = {
    "init": (("data.train_rows=20000",), None),
    "batchnorm": (("data.train_rows=20000",), None),
    "dropout": (("data.train_rows=4000", "data.val_fraction=0.75"), 80),
}


def figures(name, tmp_path):
    also, epochs = SMALLER[name]
    return run_experiment(
        name, str(REPLICA_TRAIN), tmp_path / name, seeds=(0, 1), log=lambda line: None, also=also, epochs=epochs
    )["variants"]


@pytest.mark.slow
@needs_shared
def test_compare_init_std_001_stays_at_chance_xavier_learns_he_learns_fastest(tmp_path):
    v = figures("init", tmp_path)
    small, xavier, he = v["init 0.01"], v["init xavier"], v["init he"]
    assert small["mean_val"] < 0.2  # chance is 10%
    assert xavier["mean_val"] > 0.8
    noise = max(small["spread_val"], xavier["spread_val"], he["spread_val"])
    assert he["mean_val"] - xavier["mean_val"] > noise  # He ahead of Xavier by more than the seeds differ
    assert all(r["val_accuracy"][0] > q["val_accuracy"][0] for r, q in zip(he["runs"], xavier["runs"]))  # and sooner


@pytest.mark.slow
@needs_shared
def test_compare_batchnorm_learns_faster_at_the_same_learning_rate(tmp_path):
    v = figures("batchnorm", tmp_path)
    plain, normalized = v["batchnorm false"], v["batchnorm true"]
    first = lambda f: [r["val_accuracy"][0] for r in f["runs"]]
    noise = max(max(first(plain)) - min(first(plain)), max(first(normalized)) - min(first(normalized)))
    assert min(first(normalized)) - max(first(plain)) > noise  # ahead after the first epoch, beyond the noise
    assert normalized["mean_val"] - plain["mean_val"] > max(plain["spread_val"], normalized["spread_val"])


@pytest.mark.slow
@needs_shared
def test_compare_dropout_narrows_the_train_validation_gap_when_the_network_overfits(tmp_path):
    v = figures("dropout", tmp_path)
    plain, dropped = v["dropout 0.0"], v["dropout 0.5"]
    assert all(r["train_accuracy"] > 0.99 for r in plain["runs"])  # it learned 1,000 rows by heart
    assert plain["mean_gap"] - dropped["mean_gap"] > max(plain["spread_gap"], dropped["spread_gap"])
    assert dropped["mean_val"] - plain["mean_val"] > max(plain["spread_val"], dropped["spread_val"])


def test_compare_refuses_bad_seeds_in_one_line(tmp_path, digits_csv):
    result = run_cli("compare", "init", "--data", digits_csv, "--seeds", "a,b", "--out", tmp_path / "c")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--seeds" in result.stderr
    assert not (tmp_path / "c").exists()


def test_compare_runs_each_variant_with_each_seed_and_reports_them(tmp_path, digits_csv):
    result = run_cli(
        "compare",
        "batchnorm",
        "--data",
        digits_csv,
        "--seeds",
        "0,1",
        "--out",
        tmp_path / "c",
        "--json",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary["variants"]) == ["batchnorm false", "batchnorm true"]
    for figures_ in summary["variants"].values():
        assert [r["seed"] for r in figures_["runs"]] == [0, 1] and len(figures_["runs"][0]["val_accuracy"]) == 4
        finals = [r["final_val"] for r in figures_["runs"]]
        assert figures_["spread_val"] == pytest.approx(max(finals) - min(finals))
    assert (tmp_path / "c" / "batchnorm-true-s1" / "model.npz").is_file()
