"""The network as a whole: structure, initialization, and backprop against numerical differentiation."""

import numpy as np
import pytest

import bp_train
from bp_train.config import load_config
from bp_train.nn.gradient import parameter_error


def network(*overrides, dtype="float64", seed=0):
    return bp_train.build_network(load_config(None, list(overrides)), seed=seed, dtype=dtype)


def batch(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)), rng.integers(0, 10, n)


def test_params_are_an_ordered_dict_shared_with_the_layers():
    net = network("model.hidden=[{size: 30}, {size: 20, batchnorm: true}]")
    # no b2: a bias before BatchNorm would have zero gradient; beta2 plays its role
    assert list(net.params) == ["W1", "b1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert [net.params[k].shape for k in ("W1", "W2", "W3")] == [(784, 30), (30, 20), (20, 10)]
    assert net.layers["Affine2"].W is net.params["W2"]  # an in-place update reaches the layer


@pytest.mark.parametrize(
    "hidden",
    [
        "[{size: 12, activation: relu}]",
        "[{size: 12, activation: sigmoid}]",
        "[{size: 12, activation: tanh}]",
        "[{size: 12, activation: relu}, {size: 9, activation: tanh}, {size: 7, activation: sigmoid}]",
        "[{size: 12, activation: relu, batchnorm: true}, {size: 9, activation: tanh, batchnorm: true}]",
    ],
)
def test_backprop_matches_numerical_gradient(hidden):
    net = network(f"model.hidden={hidden}", "train.weight_decay=0.01")
    x, t = batch()
    analytic = {k: g.copy() for k, g in net.gradient(x, t).items()}
    numeric = net.numerical_gradient(x, t, keep_masks=True)
    assert analytic.keys() == numeric.keys() == net.params.keys()
    for key in analytic:
        assert parameter_error(analytic[key], numeric[key]) < 1e-7, key


def test_backprop_matches_numerical_gradient_with_dropout_masks_held_fixed():
    net = network("model.hidden=[{size: 12, dropout: 0.5}]", "model.input_dropout=0.2")
    x, t = batch()
    with net.frozen():
        analytic = {k: g.copy() for k, g in net.gradient(x, t).items()}
        numeric = net.numerical_gradient(x, t, keep_masks=True)
    for key in analytic:
        assert parameter_error(analytic[key], numeric[key]) < 1e-7, key


def test_numerical_gradient_restores_every_parameter_exactly():
    net = network("model.hidden=[{size: 6}]")
    before = {k: p.copy() for k, p in net.params.items()}
    net.numerical_gradient(*batch(3))
    assert all(np.array_equal(before[k], net.params[k]) for k in before)


def test_numerical_gradient_refuses_float32():
    from bp_train.nn.errors import NetworkError

    with pytest.raises(NetworkError, match="float64"):
        network("model.hidden=[{size: 4}]", dtype="float32").numerical_gradient(*batch(2))


def test_weight_init_scales_follow_he_and_xavier():
    he = network("model.hidden=[{size: 400, activation: relu}]", "model.init=he")
    xavier = network("model.hidden=[{size: 400, activation: tanh}]", "model.init=auto")
    fixed = network("model.hidden=[{size: 400}]", "model.init=0.01")
    assert he.params["W1"].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    assert xavier.params["W1"].std() == pytest.approx(np.sqrt(1 / 784), rel=0.02)
    assert fixed.params["W1"].std() == pytest.approx(0.01, rel=0.02)
    assert not he.params["b1"].any()


def test_dtype_follows_the_config_unless_overridden_and_the_seed_fixes_the_weights():
    config = load_config(None, ["model.hidden=[{size: 8}]"])
    assert bp_train.build_network(config).params["W1"].dtype == np.float32
    assert bp_train.build_network(config, dtype=np.float64).params["W1"].dtype == np.float64
    a, b = bp_train.build_network(config, seed=5), bp_train.build_network(config, seed=5)
    c = bp_train.build_network(config, seed=6)
    assert np.array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])


def test_predict_accuracy_and_loss_agree():
    net = network("model.hidden=[{size: 16}]")
    x, t = batch(50)
    scores = net.predict(x)
    assert scores.shape == (50, 10)
    assert net.accuracy(x, t) == pytest.approx(np.mean(scores.argmax(1) == t))
    assert net.accuracy(x, np.eye(10)[t]) == net.accuracy(x, t)  # one-hot labels too
    assert np.allclose(net.predict(x, batch_size=7), scores, rtol=1e-12, atol=1e-12)
    probabilities = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert net.loss(x, t) == pytest.approx(-np.mean(np.log(probabilities[np.arange(50), t])))


def test_weight_decay_adds_half_lambda_sum_of_squares_to_the_loss():
    plain = network("model.hidden=[{size: 16}]")
    decayed = network("model.hidden=[{size: 16}]", "train.weight_decay=0.1")
    x, t = batch()
    squares = sum(np.sum(decayed.params[k] ** 2) for k in ("W1", "W2"))
    assert decayed.loss(x, t) - plain.loss(x, t) == pytest.approx(0.05 * squares)
