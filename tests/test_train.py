"""The training loop: it learns, it reproduces from a seed, its files are whole, it resumes exactly, and
it stops cleanly on divergence or Ctrl-C."""

import csv
import json
import re

import numpy as np
import pytest
from conftest import synthetic_digits

from bp_train.config import load_config
from bp_train.data.digits import Digits
from bp_train.errors import ConfigError, DivergenceError
from bp_train.files.model import load_model
from bp_train.training.checkpoint import resume_config
from bp_train.training.trainer import Interrupted, Trainer, fit

IMAGES, LABELS = synthetic_digits(500, seed=2)
DIGITS = Digits(IMAGES, LABELS, "synthetic")


def config(*overrides):
    return load_config(
        None,
        [
            "model.hidden=[{size: 24}]",
            "train.batch_size=50",
            "train.epochs=3",
            "train.optimizer={name: momentum, lr: 0.05}",
            "data.val_fraction=0.2",
            *overrides,
        ],
    )


def quiet_fit(cfg, run_dir, **kw):
    return fit(cfg, run_dir, show_progress=False, log=lambda line: None, digits=DIGITS, **kw)


def weights(run_dir):
    network, _, _ = load_model(run_dir / "model.npz")
    return network.state()


def metrics(run_dir, drop=("seconds",)):
    with open(run_dir / "metrics.csv") as handle:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(handle)]


def test_training_learns_the_synthetic_digits_and_writes_the_run_files(tmp_path):
    summary = quiet_fit(config("train.epochs=4"), tmp_path / "run")
    assert summary["val_accuracy"] > 0.95  # chance is 0.1: only a working backprop gets here
    rows = metrics(tmp_path / "run", drop=())
    assert list(rows[0]) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.train.epochs == 4 and saved.layer_sizes == [784, 24, 10]


def test_model_file_is_plain_arrays_and_json_loadable_without_pickle(tmp_path):
    quiet_fit(config(), tmp_path / "run")
    with np.load(tmp_path / "run" / "model.npz", allow_pickle=False) as archive:
        assert {"W1", "b1", "W2", "b2", "meta"} <= set(archive.files)
        meta = json.loads(str(archive["meta"]))
    assert meta["format"] == "bp-train-model/1" and meta["config"]["model"]["hidden"][0]["size"] == 24


def test_same_seed_gives_identical_weights_and_metrics_and_another_seed_does_not(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        quiet_fit(config(f"train.seed={seed}", "model.hidden=[{size: 24, dropout: 0.2}]"), tmp_path / name)
    a, b, c = (weights(tmp_path / n) for n in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_two_epochs_then_resume_for_two_more_equals_four_in_one_go(tmp_path):
    # Adam state, dropout masks and shuffling order must all carry over for this to hold exactly.
    overrides = ["train.optimizer={name: adam, lr: 0.002}", "model.hidden=[{size: 24, dropout: 0.3, batchnorm: true}]"]
    quiet_fit(config("train.epochs=4", *overrides), tmp_path / "straight")
    quiet_fit(config("train.epochs=2", *overrides), tmp_path / "split")
    resumed = resume_config(tmp_path / "split", config("train.epochs=4", *overrides))
    quiet_fit(resumed, tmp_path / "split", resume=True)
    straight, split = weights(tmp_path / "straight"), weights(tmp_path / "split")
    assert all(np.array_equal(straight[k], split[k]) for k in straight)
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "split")


def test_resume_refuses_a_changed_network_and_names_the_key(tmp_path):
    quiet_fit(config("train.epochs=1"), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"'model.hidden' changed .* only train.epochs"):
        resume_config(tmp_path / "run", config("model.hidden=[{size: 30}]"))
    with pytest.raises(ConfigError, match=r"'train.optimizer.lr' changed"):
        resume_config(tmp_path / "run", config("train.optimizer={name: momentum, lr: 0.5}"))


def test_ctrl_c_keeps_a_resumable_checkpoint_and_says_how_to_resume(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    original = Trainer.run_epoch

    def interrupted_in_epoch_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_epoch_3)
    with pytest.raises(
        Interrupted,
        match=r"checkpoint \(after epoch 2\) is kept in .*\. Resume with: bp-train fit "
        f"--resume {re.escape(str(run_dir))}",
    ):
        quiet_fit(config("train.epochs=4"), run_dir)
    monkeypatch.setattr(Trainer, "run_epoch", original)
    assert len(metrics(run_dir)) == 2
    quiet_fit(resume_config(run_dir, config("train.epochs=4")), run_dir, resume=True)
    quiet_fit(config("train.epochs=4"), tmp_path / "straight")
    assert metrics(run_dir) == metrics(tmp_path / "straight")


def test_divergence_stops_at_once_with_advice_and_keeps_the_last_good_files(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    quiet_fit(config("train.epochs=1"), run_dir)
    good_model = (run_dir / "model.npz").read_bytes()
    with pytest.raises(
        DivergenceError, match=r"loss became \S+\. The last good checkpoint .*try a lower learning rate"
    ):
        quiet_fit(config("train.epochs=3", "train.optimizer={name: sgd, lr: 1.0e+30}"), run_dir)
    assert (run_dir / "model.npz").read_bytes() == good_model  # diverged in epoch 1: nothing replaced


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    summary = quiet_fit(
        config("train.epochs=12", "train.early_stopping={metric: val_loss, patience: 20}"), tmp_path / "run"
    )
    losses = [float(r["val_loss"]) for r in metrics(tmp_path / "run")]
    assert not summary["stopped_early"] and len(losses) == 12
    assert summary["best_epoch"] == 1 + int(np.argmin(losses))
    _, _, meta = load_model(tmp_path / "run" / "model.npz")
    assert meta["epoch"] == summary["best_epoch"]


def test_early_stopping_stops_after_patience_epochs_without_min_delta_improvement(tmp_path):
    # min_delta 10: no later epoch can beat epoch 1 by that much, so it stops after 1 + patience epochs.
    summary = quiet_fit(
        config("train.epochs=30", "train.early_stopping={metric: val_accuracy, patience: 3, min_delta: 10}"),
        tmp_path / "run",
    )
    assert summary["stopped_early"] and summary["epochs"] == 4 and summary["best_epoch"] == 1
    _, _, meta = load_model(tmp_path / "run" / "model.npz")
    assert meta["epoch"] == 1


@pytest.mark.parametrize("hidden", ["[{size: 3}]", "[{size: 4, dropout: 0.5, batchnorm: true, activation: tanh}]"])
def test_numerical_and_backprop_training_end_at_the_same_weights(tmp_path, hidden):
    # Same seed, loop, optimizer and data; with dropout and BatchNorm the two must also draw the same
    # masks and update the running averages alike.
    tiny = Digits(IMAGES[:40], LABELS[:40], "tiny")
    results = {}
    for method in ("backprop", "numerical"):
        cfg = load_config(
            None,
            [
                f"model.hidden={hidden}",
                "model.dtype=float64",
                "train.batch_size=10",
                "train.epochs=1",
                "data.val_fraction=0",
                f"train.gradient={method}",
                "train.optimizer={name: momentum, lr: 0.1}",
            ],
        )
        fit(cfg, tmp_path / method, show_progress=False, log=lambda line: None, digits=tiny)
        results[method] = weights(tmp_path / method)
    for key in results["backprop"]:
        assert np.allclose(results["backprop"][key], results["numerical"][key], rtol=0, atol=1e-8), key
