"""gradcheck passes for correct layers and catches a planted bug in each layer type, naming the parameter."""

import json

import numpy as np
import pytest
from conftest import REPLICA_TRAIN, ROOT, needs_shared, run_cli

from bp_train.config import build_network, load_config
from bp_train.nn import fast_layers as F
from bp_train.nn import layers as L
from bp_train.nn.gradient import gradcheck


def check(*overrides, seed=0):
    config = load_config(None, ["data.train=/nonexistent.csv", *overrides])
    net = build_network(config, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    return gradcheck(net, rng.random((20, 784)), rng.integers(0, 10, 20), batch=4)


ALL_LAYERS = (
    "model.hidden=[{size: 10, activation: relu, batchnorm: true, dropout: 0.3},"
    " {size: 8, activation: sigmoid}, {size: 6, activation: tanh}]"
)


def test_gradcheck_passes_for_every_layer_type_together():
    result = check(ALL_LAYERS, "train.weight_decay=0.01")
    assert result["passed"], result
    assert all(row["rel_error"] < 1e-7 for row in result["params"])


# Each plant is a plausible student mistake, planted in the class the network runs (the lesson's own, or its
# fast version from fast_layers.py); `expected` names the parameters whose gradient it must break.
def relu_forgets_mask(self, dout):
    return dout.copy()


def sigmoid_wrong_derivative(self, dout):
    return dout * self.out


def tanh_wrong_derivative(self, dout):
    return dout * (1.0 - self.out)


def affine_forgets_bias_sum(self, dout):
    self.dW[...] = self.x.T @ dout
    if self.b is not None:
        self.db[...] = dout[0]
    return (dout @ self.W.T).reshape(self.x_shape) if self.need_dx else None


def affine_wrong_input_gradient(self, dout):
    self.dW[...] = self.x.T @ dout
    if self.b is not None:
        self.db[...] = dout.sum(axis=0)
    return (2 * dout @ self.W.T).reshape(self.x_shape) if self.need_dx else None


def batchnorm_ignores_mean(self, dout):
    self.dgamma[...] = np.sum(dout * self.xhat, axis=0)
    self.dbeta[...] = np.sum(dout, axis=0)
    return dout * self.gamma / self.std


def dropout_ignores_mask(self, dout):
    return dout


def softmax_forgets_batch_mean(self, dout=1.0):
    dx = self.y.copy()
    dx[np.arange(len(dx)), self.t] -= 1
    return dx * dout


@pytest.mark.parametrize(
    "layer, method, plant, expected",
    [
        (L.ReLU, "backward", relu_forgets_mask, "W1"),
        (L.Sigmoid, "backward", sigmoid_wrong_derivative, "W2"),
        (L.Tanh, "backward", tanh_wrong_derivative, "W3"),
        (F.FastAffine, "backward", affine_forgets_bias_sum, "b4"),
        (F.FastAffine, "backward", affine_wrong_input_gradient, "W1"),
        (F.FastBatchNorm, "backward", batchnorm_ignores_mean, "W1"),
        (L.Dropout, "backward", dropout_ignores_mask, "W1"),
        (F.DeviceSoftmaxWithLoss, "backward", softmax_forgets_batch_mean, "b4"),
    ],
)
def test_gradcheck_fails_and_names_the_parameter_for_each_planted_bug(monkeypatch, layer, method, plant, expected):
    monkeypatch.setattr(layer, method, plant)
    result = check(ALL_LAYERS)
    failed = {row["param"] for row in result["params"] if not row["passed"]}
    assert not result["passed"]
    assert expected in failed


def test_gradcheck_replaces_rows_that_sit_on_a_relu_kink():
    config = load_config(None, ["model.hidden=[{size: 5}]"])
    net = build_network(config, dtype="float64")
    x = np.random.default_rng(0).random((12, 784))
    # Put row 0 exactly on a kink: choose its pixels so unit 0's pre-activation is 0.
    w = net.params["W1"][:, 0]
    x[0] -= w * (x[0] @ w) / (w @ w)
    result = gradcheck(net, x, np.arange(12) % 10, batch=4)
    assert result["replaced_near_kink"] >= 1
    assert result["passed"]


def test_a_difference_that_straddles_a_kink_is_left_out_and_said_not_failed():
    config = load_config(None, ["model.hidden=[{size: 5}]"])
    net = build_network(config, dtype="float64")
    x = np.random.default_rng(0).random((4, 784))
    w = net.params["W1"][:, 0]
    x[0] -= w * (x[0] @ w) / (w @ w)  # row 0 on unit 0's kink, and no spare row to put in its place
    result = gradcheck(net, x, np.arange(4), batch=4)
    assert result["replaced_near_kink"] == 0
    assert result["kinks_crossed"] >= 1
    w1 = next(r for r in result["params"] if r["param"] == "W1")
    assert w1["kinks"] >= 1 and w1["checked"] == w1["shape"][0] * w1["shape"][1] - w1["kinks"]
    assert result["passed"]


def test_a_kink_is_told_by_the_decisions_flipping_not_by_the_size_of_the_error():
    from bp_train.nn.gradient import numerical_gradient

    config = load_config(None, ["model.hidden=[{size: 3}]"])
    net = build_network(config, dtype="float64")
    x = np.random.default_rng(1).random((2, 784))
    with net.frozen():
        net.loss(x, np.array([1, 2]), train=True)
        pre = x @ net.params["W1"] + net.params["b1"]
        net.params["b1"][0] -= pre[0, 0] - 3e-6  # unit 0 of row 0 sits 3e-6 above its kink
        crossed = []
        numerical_gradient(
            lambda: net.loss_terms(x, np.array([1, 2]), train=True),
            net.params["b1"],
            decisions=net.decisions,
            crossed=crossed,
        )
    assert crossed == [(0,)]  # b1[0] +- 1e-5 switches that unit on and off; b1[1], b1[2] do not


def test_the_default_sample_is_the_same_on_every_machine(monkeypatch):
    import time

    from bp_train.cli.measure import default_entries

    config = load_config(ROOT / "configs" / "cnn.yaml")
    net = build_network(config, dtype="float64")
    first = default_entries(config, net, 4)
    monkeypatch.setattr(time, "perf_counter", lambda: (_ for _ in ()).throw(AssertionError("timed")))
    assert default_entries(config, net, 4) == first and first[0] is not None


def test_cli_gradcheck_reports_a_table_and_exit_code(tmp_path):
    result = run_cli("gradcheck", "--set", "model.hidden=[{size: 6}]", "--set", f"data.train={tmp_path}/none.csv")
    assert result.exit_code == 0, result.output
    assert "W1" in result.stdout and "PASS" in result.stdout and "tolerance 1e-06" in result.stdout
    result = run_cli(
        "gradcheck",
        "--set",
        "model.hidden=[{size: 6}]",
        "--set",
        f"data.train={tmp_path}/none.csv",
        "--json",
        "--tol",
        "1e-30",
    )
    assert result.exit_code == 1  # nothing can pass a tolerance of 1e-30: exit code 1, not 0 or 2
    figures = json.loads(result.stdout)
    assert [row["param"] for row in figures["params"]] == ["W1", "b1", "W2", "b2"]
    assert not figures["passed"]


def test_cli_gradcheck_refuses_float32_with_an_explanation():
    result = run_cli("gradcheck", "--dtype", "float32")
    assert result.exit_code == 2
    assert "float32" in result.stderr and "noise" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("config", ["default", "sigmoid", "deep"])
def test_cli_gradcheck_passes_for_shipped_configs(config, tmp_path):
    # Large networks: a sample of entries per parameter keeps this quick; default is checked in full.
    entries = [] if config == "default" else ["--entries", "300"]
    result = run_cli("gradcheck", "--config", ROOT / "configs" / f"{config}.yaml", "--json", *entries, cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"]


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("config", ["best-cnn-augmented", "fast-cnn"])
def test_cli_gradcheck_default_options_pass_on_the_cnn_configs_on_real_digits(config, tmp_path):
    """The configs whose sampled entries once crossed a pooling or ReLU kink and failed: with default
    options, on real digits, the crossed entries are left out and said, and every parameter passes."""
    result = run_cli(
        "gradcheck",
        "--config",
        ROOT / "configs" / f"{config}.yaml",
        "--set",
        f"data.train={REPLICA_TRAIN}",
        "--json",
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["passed"] and "the same on every machine" in figures["sampled"]
    assert all(row["rel_error"] < 1e-6 for row in figures["params"])
