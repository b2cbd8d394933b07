"""Optimizers against their textbook formulas, on real digits, and across a save/restore; schedules at
hand-computed points."""

import math

import numpy as np
import pytest
from conftest import REPLICA_TRAIN, needs_shared, synthetic_digits

from bp_train.config import build_network, load_config
from bp_train.data.digits import load_digits, to_float
from bp_train.nn.optimizers import learning_rate, make_optimizer
from bp_train.nn.vectors import views

NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]


def reference_steps(name, w, grads, lr=0.1, mu=0.9, b1=0.9, b2=0.999, decay=0.99, eps=1e-8):
    """The formulas of the optimizers' docstrings, written out plainly, as an independent oracle."""
    w, v, m, h = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for step, g in enumerate(grads, start=1):
        if name == "sgd":
            w = w - lr * g
        elif name == "momentum":
            v = mu * v - lr * g
            w = w + v
        elif name == "nesterov":
            v = mu * v - lr * g
            w = w + mu * v - lr * g
        elif name == "adagrad":
            h = h + g * g
            w = w - lr * g / (np.sqrt(h) + eps)
        elif name == "rmsprop":
            h = decay * h + (1 - decay) * g * g
            w = w - lr * g / (np.sqrt(h) + eps)
        else:
            m = b1 * m + (1 - b1) * g
            h = b2 * h + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**step), h / (1 - b2**step)
            w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


@pytest.mark.parametrize("name", NAMES)
def test_three_steps_match_the_formula(name):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(3)]
    optimizer = make_optimizer(name, lr=0.1)
    params = {"W": w0.copy()}
    for g in grads:
        optimizer.update(params, {"W": g.copy()})
    assert np.allclose(params["W"], reference_steps(name, w0, grads), rtol=1e-12, atol=1e-14)


def small_batch():
    if REPLICA_TRAIN.is_file():
        digits = load_digits(REPLICA_TRAIN)
        return to_float(digits.images[:200]), digits.labels[:200].astype(np.intp)
    images, labels = synthetic_digits(200)
    return to_float(images), labels.astype(np.intp)


@pytest.mark.parametrize("name", NAMES)
def test_each_optimizer_reduces_the_loss_on_a_small_real_batch(name):
    x, t = small_batch()
    lr = {"sgd": 0.3, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001}[name]
    network = build_network(load_config(None, ["model.hidden=[{size: 50}]"]), seed=1)
    optimizer = make_optimizer(name, lr=lr)
    before = network.loss(x, t)
    for _ in range(20):
        optimizer.update(network.params, network.gradient(x, t))
    assert network.loss(x, t) < 0.5 * before


@needs_shared
def test_the_small_batch_is_real_mnist_when_the_data_is_present():
    x, _ = small_batch()
    assert x.shape == (200, 784) and np.mean(x == 0) > 0.7  # real digits are mostly background


@pytest.mark.parametrize("name", NAMES)
def test_state_restored_into_a_new_optimizer_continues_identically(name):
    rng = np.random.default_rng(3)
    grads = [{"W": rng.standard_normal(5)} for _ in range(4)]
    straight, first = make_optimizer(name, lr=0.1), make_optimizer(name, lr=0.1)
    a, b = {"W": np.ones(5)}, {"W": np.ones(5)}
    for g in grads:
        straight.update(a, {"W": g["W"].copy()})
    for g in grads[:2]:
        first.update(b, {"W": g["W"].copy()})
    second = make_optimizer(name, lr=0.1)
    second.load_state(first.state())
    for g in grads[2:]:
        second.update(b, {"W": g["W"].copy()})
    assert np.array_equal(a["W"], b["W"])


class Counted(np.ndarray):
    """An ndarray that counts the NumPy operations (ufunc calls) made on it: on a GPU each is a kernel
    launch, the cost that stepping over one vector saves."""

    operations = 0

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        Counted.operations += 1
        plain = [a.view(np.ndarray) if isinstance(a, Counted) else a for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(a.view(np.ndarray) if isinstance(a, Counted) else a for a in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        return out[0] if out is not None else (result.view(Counted) if isinstance(result, np.ndarray) else result)


def counted_steps(name, hidden, vectors, steps=3):
    """(parameters after `steps` updates, array operations per update) for a network with `hidden`
    layers, its parameters and gradients as views of counting vectors, stepped with or without them."""
    x, t = small_batch()
    network = build_network(load_config(None, [f"model.hidden={hidden}", "model.dtype=float64"]), seed=2)
    shapes = {key: p.shape for key, p in network.params.items()}
    param_vector = network.param_vector.copy().view(Counted)
    params = views(param_vector, shapes)
    optimizer = make_optimizer(name, lr=0.01)
    counts = []
    for _ in range(steps):
        grad_vector = np.concatenate([g.ravel() for g in network.gradient(x, t).values()]).view(Counted)
        before = Counted.operations
        if vectors:
            optimizer.update_vectors(params, (param_vector, grad_vector))
        else:
            optimizer.update(params, views(grad_vector, shapes))
        counts.append(Counted.operations - before)
    return param_vector.view(np.ndarray), counts[-1]


@pytest.mark.parametrize("name", NAMES)
def test_a_step_over_the_vectors_gives_the_per_array_result_in_a_fixed_number_of_operations(name):
    shallow = "[{size: 20}]"
    deep = "[{size: 20}, {size: 16, batchnorm: true}, {size: 12}]"  # 9 parameter arrays, not 4
    per_array, per_array_operations = counted_steps(name, deep, vectors=False)
    together, operations = counted_steps(name, deep, vectors=True)
    assert np.array_equal(together, per_array)  # elementwise arithmetic: the same numbers, bit for bit
    assert per_array_operations == 9 * operations
    assert counted_steps(name, shallow, vectors=True)[1] == operations  # as many for 4 arrays as for 9


@pytest.mark.parametrize("name", NAMES)
def test_update_moves_the_parameters_and_leaves_the_gradients_alone(name):
    """The README's `SGD(lr=0.1).update(net.params, grads)`: grads are the caller's, read and left as they
    were; SGD moves each parameter by exactly -lr * grad."""
    x, t = small_batch()
    network = build_network(load_config(None, ["model.hidden=[{size: 20}]", "model.dtype=float64"]), seed=2)
    grads = {key: g.copy() for key, g in network.gradient(x, t).items()}
    kept = {key: g.copy() for key, g in grads.items()}
    before = {key: p.copy() for key, p in network.params.items()}
    optimizer = make_optimizer(name, lr=0.1)
    for _ in range(2):
        optimizer.update(network.params, grads)
        assert all(np.array_equal(grads[key], kept[key]) for key in grads), name
    if name == "sgd":
        for key, param in network.params.items():
            np.testing.assert_allclose(param, before[key] - 2 * 0.1 * kept[key], rtol=0, atol=1e-12)
    assert all(not np.array_equal(network.params[key], before[key]) for key in grads)


def test_the_network_keeps_parameters_and_gradients_as_views_of_its_vectors():
    x, t = small_batch()
    network = build_network(load_config(None, ["model.hidden=[{size: 20}, {size: 16, batchnorm: true}]"]), seed=2)
    layers = network.layers
    assert layers["Affine1"].W is network.params["W1"] and layers["BatchNorm2"].gamma is network.params["gamma2"]
    network.param_vector[:3] = 7.0  # the vector's first numbers are W1's first row
    assert np.array_equal(network.params["W1"].ravel()[:3], [7, 7, 7])
    grads = network.gradient(x, t)
    assert np.array_equal(network.grad_vector, np.concatenate([g.ravel() for g in grads.values()]))
    assert list(grads) == list(network.params) and all(np.shares_memory(g, network.grad_vector) for g in grads.values())


def test_a_layer_that_makes_a_new_gradient_array_still_reaches_the_vector():
    """A student's layer may write `self.dW = x.T @ dout` instead of into its array: the network copies it."""
    x, t = small_batch()
    config = load_config(None, ["model.hidden=[{size: 20}]"])
    expected = build_network(config, seed=2).gradient(x, t)
    network = build_network(config, seed=2)
    layer = network.layers["Affine2"]

    def rebinding_backward(dout):
        layer.dW = layer.x.T @ dout
        layer.db = dout.sum(axis=0)
        return (dout @ layer.W.T).reshape(layer.x_shape)

    layer.backward = rebinding_backward
    grads = network.gradient(x, t)
    assert all(np.allclose(grads[key], expected[key], rtol=1e-6, atol=1e-7) for key in expected)
    assert np.array_equal(network.grad_vector, np.concatenate([g.ravel() for g in expected.values()]))


def test_schedules_at_hand_computed_points():
    step = {"name": "step", "step_size": 3, "gamma": 0.5}
    cosine, warm = {"name": "cosine", "min_lr": 0.01}, {"name": "cosine", "warmup_epochs": 2}
    assert learning_rate("constant", 0.1, 10, 7.3) == 0.1
    assert [learning_rate(base_lr=0.1, epochs=10, t=t, **step) for t in (0.5, 2.99, 3.0, 6.5)] == pytest.approx(
        [0.1, 0.1, 0.05, 0.025]
    )
    assert learning_rate(base_lr=0.1, epochs=10, t=0, **cosine) == pytest.approx(0.1)
    assert learning_rate(base_lr=0.1, epochs=10, t=5, **cosine) == pytest.approx(0.01 + 0.5 * 0.09)
    assert learning_rate(base_lr=0.1, epochs=10, t=10, **cosine) == pytest.approx(0.01)
    assert learning_rate(base_lr=0.2, epochs=10, t=1, **warm) == pytest.approx(0.1)  # halfway up the warm-up
    assert learning_rate(base_lr=0.2, epochs=10, t=6, **warm) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.5)))
    # the config's schedule section reaches the same function through the tool
    from bp_train.config import learning_rate_at

    config = load_config(None, ["train.schedule={name: step, step_size: 3, gamma: 0.5}", "train.optimizer.lr=0.1"])
    assert learning_rate_at(config, 3.0) == pytest.approx(0.05)
