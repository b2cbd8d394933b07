"""The lesson's classes are the oracle: every fast layer the training loop runs (nn/fast_layers.py) gives
the textbook class's numbers on the same weights and input, forward and backward -- float64 to 1e-10,
float32 to rounding -- for the shapes the configs use, odd batches included; and the full network gives
the first network's gradients (nn/simple_network.py), which equal central differences."""

import numpy as np
import pytest

from bp_train.config import build_network, load_config
from bp_train.nn import conv as C
from bp_train.nn import fast_layers as F
from bp_train.nn import layers as L
from bp_train.nn import losses
from bp_train.nn.gradient import numerical_gradient, parameter_error
from bp_train.nn.network import Network
from bp_train.nn.simple_network import SimpleNetwork

TOLERANCE = {np.float64: 1e-10, np.float32: 2e-5}
BATCHES = (1, 4, 101)


def close(a, b, dtype):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    assert parameter_error(a.astype(np.float64), b.astype(np.float64)) < TOLERANCE[dtype]


def same_both_ways(lesson, fast, x, dtype, grads=()):
    """forward, then backward of one random dout, through both; the gradients named in `grads` too."""
    out = lesson.forward(x.copy())
    close(fast.forward(x.copy()), out, dtype)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx = lesson.backward(dout.copy())
    close(fast.backward(dout.copy()), dx, dtype)
    for name in grads:
        close(getattr(fast, name), getattr(lesson, name), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("shape", [(784,), (1, 28, 28), (7, 7, 64)], ids=["row", "image", "maps"])
def test_fast_affine_equals_the_lesson_and_skips_only_dx(dtype, batch, shape):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, *shape)).astype(dtype)
    W, b = rng.standard_normal((int(np.prod(shape)), 10)).astype(dtype), rng.standard_normal(10).astype(dtype)
    same_both_ways(L.Affine(W, b), F.FastAffine(W.copy(), b.copy()), x, dtype, grads=("dW", "db"))
    first = F.FastAffine(W.copy(), b.copy(), need_dx=False)  # a first layer: its input is the data
    lesson = L.Affine(W, b)
    first.forward(x), lesson.forward(x)
    dout = rng.standard_normal((batch, 10)).astype(dtype)
    assert first.backward(dout) is None
    lesson.backward(dout)
    close(first.dW, lesson.dW, dtype)
    no_bias = F.FastAffine(W.copy(), None)  # before BatchNorm: the lesson's layer with a bias of 0
    same_both_ways(L.Affine(W, np.zeros_like(b)), no_bias, x, dtype, grads=("dW",))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(
    "kernel, channels, filters, stride, pad, side",
    [
        (3, 1, 32, 1, 1, 28),
        (5, 1, 32, 1, 2, 28),
        (3, 32, 64, 1, 1, 14),
        (5, 32, 64, 1, 2, 14),
        (5, 32, 32, 2, 2, 28),
        (4, 64, 128, 1, 0, 4),
        (3, 1, 32, 1, 0, 28),
        (5, 1, 8, 2, 2, 28),
    ],
    ids=["fast-cnn 1", "5x5 1", "fast-cnn 2", "best-cnn 2", "strided", "dense as conv", "no pad 1", "strided 1"],
)
def test_fast_convolution_equals_the_textbooks_for_every_block_shape(
    dtype, batch, kernel, channels, filters, stride, pad, side
):
    rng = np.random.default_rng(kernel * channels + batch)
    x = rng.standard_normal((min(batch, 9), side, side, channels)).astype(dtype)  # 101 28x28x32 maps: too slow
    W = (0.1 * rng.standard_normal((kernel, kernel, channels, filters))).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    fast = F.FastConvolution(W.copy(), b.copy(), stride, pad)
    same_both_ways(C.Convolution(W, b, stride, pad), fast, x, dtype, grads=("dW", "db"))
    same_both_ways(C.Convolution(W, b, stride, pad), fast, x[::-1].copy(), dtype, grads=("dW", "db"))  # buffer reused


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [2, 4, 101])  # BatchNorm needs two rows to have a variance
@pytest.mark.parametrize("spatial", [False, True])
def test_fused_batchnorm_equals_the_step_by_step_graph(dtype, batch, spatial):
    rng = np.random.default_rng(batch)
    shape = (batch, 7, 7, 16) if spatial else (batch, 256)
    x = (3 * rng.standard_normal(shape) + 1).astype(dtype)
    features = shape[-1]
    gamma, beta = rng.uniform(0.5, 1.5, features).astype(dtype), rng.standard_normal(features).astype(dtype)
    lesson_class, fast_class = (
        (C.SpatialBatchNorm, F.FastSpatialBatchNorm) if spatial else (L.BatchNorm, F.FastBatchNorm)
    )
    running = [np.zeros(features, dtype), np.ones(features, dtype)]
    lesson = lesson_class(gamma, beta, *running)
    fast = fast_class(gamma.copy(), beta.copy(), *(r.copy() for r in running))
    same_both_ways(lesson, fast, x, dtype, grads=("dgamma", "dbeta"))
    close(fast.running_mean, lesson.running_mean, dtype)
    close(fast.running_var, lesson.running_var, dtype)
    lesson.train = fast.train = False  # evaluation: the running averages
    close(fast.forward(x), lesson.forward(x), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_device_dropout_draws_the_masks_the_trainer_always_drew_and_applies_them_as_the_lesson(dtype):
    x = np.random.default_rng(0).standard_normal((101, 256)).astype(dtype)
    fast = F.DeviceDropout(0.5, np.random.default_rng(7))
    out = fast.forward(x)
    lesson = L.Dropout(0.5, None)
    lesson.draw_mask = lambda x: fast.mask  # the lesson's layer with the very same mask
    same_both_ways(lesson, fast_with_mask(fast.mask), x, dtype)
    keep = np.random.default_rng(7).random(x.shape, dtype=np.float32) >= 0.5
    close(out, np.where(keep, 2 * x, 0).astype(dtype), dtype)
    fast.frozen = True
    assert fast.draw_mask(x) is fast.mask  # frozen: the same mask again, for a numerical gradient


def fast_with_mask(mask):
    layer = F.DeviceDropout(0.5, None)
    layer.frozen, layer.mask = True, mask
    return layer


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("batch", BATCHES)
def test_device_loss_heads_equal_the_lessons(dtype, name, batch):
    rng = np.random.default_rng(batch)
    x, t = rng.standard_normal((batch, 10)).astype(dtype), rng.integers(0, 10, batch)
    lesson, fast = losses.LOSSES[name](), F.DEVICE_LOSSES[name]()
    assert fast.forward(x, t) == pytest.approx(lesson.forward(x, t), rel=TOLERANCE[dtype])
    close(fast.backward(1.0), lesson.backward(1.0), dtype)
    close(fast.probabilities(x), lesson.probabilities(x), dtype)


CONFIGS = {
    "dense": ["model.hidden=[{size: 30}, {size: 20}]"],
    "batchnorm and dropout": [
        "model.hidden=[{size: 30, batchnorm: true, dropout: 0.3}, {size: 20, activation: tanh}]",
        "model.input_dropout=0.2",
    ],
    "cnn": [
        "model.input_shape=[1, 28, 28]",
        "model.conv=[{filters: 4, kernel: 3, pad: 1, pool: 2}, {filters: 6, kernel: 3, pool: 2, batchnorm: true}]",
        "model.hidden=[{size: 16, dropout: 0.5}]",
    ],
}


def lesson_network_like(network: Network) -> list:
    """The full network's layers rebuilt from the lesson's own classes, on the same arrays."""
    layers = []
    for layer in network.layers.values():
        if isinstance(layer, F.FastConvolution):
            b = layer.b if layer.b is not None else np.zeros(layer.W.shape[3])
            layers.append(C.Convolution(layer.W, b, layer.stride, layer.pad))
        elif isinstance(layer, F.FastAffine):
            layers.append(L.Affine(layer.W, layer.b if layer.b is not None else np.zeros(layer.W.shape[1])))
        elif isinstance(layer, F.FastBatchNorm):
            kind = C.SpatialBatchNorm if isinstance(layer, F.FastSpatialBatchNorm) else L.BatchNorm
            layers.append(kind(layer.gamma, layer.beta, layer.running_mean.copy(), layer.running_var.copy()))
        elif isinstance(layer, F.DeviceDropout):
            lesson = L.Dropout(layer.ratio, None)
            lesson.draw_mask = lambda x, layer=layer: layer.mask  # the full network's mask, drawn just before
            layers.append(lesson)
        else:
            layers.append(layer)  # ReLU, Sigmoid, Tanh, Pooling and the reshapes are the lesson's own
    return layers


@pytest.mark.parametrize("name", CONFIGS)
def test_the_full_network_gives_the_lesson_layers_gradients_on_the_same_weights(name):
    network = build_network(load_config(None, CONFIGS[name]), seed=3, dtype="float64")
    rng = np.random.default_rng(0)
    x, t = rng.random((5, 784)), rng.integers(0, 10, 5)
    grads = {k: g.copy() for k, g in network.gradient(x, t).items()}
    layers = lesson_network_like(network)
    out = x
    for layer in layers:
        out = layer.forward(out)
    loss = L.SoftmaxWithLoss()
    assert loss.forward(out, t) == pytest.approx(network.last_loss, rel=1e-12)
    dout = loss.backward(1.0)
    for layer in reversed(layers):
        dout = layer.backward(dout)
    lesson_grads = {}
    for name, lesson in zip(network.layers, layers):
        for param, key in network.keys.get(name, {}).items():
            lesson_grads[key] = getattr(lesson, "d" + param)
    assert lesson_grads.keys() == grads.keys()
    for key in grads:
        assert parameter_error(grads[key], lesson_grads[key]) < 1e-10, key


def test_the_first_network_gives_the_full_networks_gradients_and_central_differences():
    simple = SimpleNetwork(input_size=784, hidden_sizes=[20, 15], output_size=10, seed=4)
    full = Network(input_size=784, hidden_sizes=[20, 15], output_size=10, seed=4)
    assert all(np.array_equal(simple.params[k], full.params[k]) for k in full.params)  # the same weights
    rng = np.random.default_rng(0)
    x, t = rng.random((3, 784)), np.array([3, 1, 4])
    grads, expected = simple.gradient(x, t), full.gradient(x, t)
    assert grads.keys() == expected.keys()
    for key in grads:
        assert parameter_error(grads[key], expected[key]) < 1e-10, key
    for key in ("W3", "b3", "b1"):  # the small ones: central differences for every entry
        numeric = numerical_gradient(lambda: simple.loss(x, t), simple.params[key])
        assert parameter_error(grads[key], numeric) < 1e-7, key
    assert simple.loss(x, t) == pytest.approx(full.loss(x, t), rel=1e-12)
