"""Convolution, Pooling and spatial BatchNorm: forward against loop-based definitions, backward against
central differences, planted bugs caught by gradcheck, and CNN configs checked when read."""

import json
import re

import numpy as np
import pytest
from conftest import ROOT, run_cli, synthetic_digits, write_digit_csv

from bp_train.config import build_network, load_config
from bp_train.errors import ConfigError
from bp_train.nn import conv as C
from bp_train.nn import fast_layers as F
from bp_train.nn.gradient import gradcheck, parameter_error

# --- oracles: the definitions, written as plain loops ---------------------------------------------------


def direct_convolution(x, W, b, stride, pad):
    """out[n, i, j, f] = sum_{p,q,c} xpad[n, i*s+p, j*s+q, c] W[p, q, c, f] + b[f], one output at a time."""
    n, h, w, c = x.shape
    kh, kw, _, fn = W.shape
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c))
    xp[:, pad : pad + h, pad : pad + w, :] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out = np.zeros((n, oh, ow, fn))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                for f in range(fn):
                    patch = xp[s, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
                    out[s, i, j, f] = np.sum(patch * W[:, :, :, f]) + b[f]
    return out


def direct_max_pool(x, size, stride):
    n, h, w, c = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, oh, ow, c))
    for s in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    out[s, i, j, ch] = x[s, i * stride : i * stride + size, j * stride : j * stride + size, ch].max()
    return out


def numerical(f, array, h=1e-6):
    """Central differences of the scalar f() with respect to every entry of `array` (changed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + h
        plus = f()
        array[index] = old - h
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


CONV_CASES = [  # (N, H, W, C, FN, K, stride, pad): odd and even sizes, stride 1 and 2, pad 0 and 1
    (2, 5, 5, 1, 2, 3, 1, 0),
    (2, 6, 6, 3, 4, 3, 1, 1),
    (3, 7, 6, 2, 3, 3, 2, 1),
    (2, 8, 8, 2, 2, 2, 2, 0),
    (1, 6, 7, 3, 2, 5, 2, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_forward_equals_the_loop_definition(case):
    n, h, w, c, fn, k, stride, pad = case
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((n, h, w, c)), rng.standard_normal((k, k, c, fn)), rng.standard_normal(fn)
    out = C.Convolution(W, b, stride, pad).forward(x)
    np.testing.assert_allclose(out, direct_convolution(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_gradients_equal_central_differences(case):
    n, h, w, c, fn, k, stride, pad = case
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((n, h, w, c)), rng.standard_normal((k, k, c, fn)), rng.standard_normal(fn)
    layer = C.Convolution(W, b, stride, pad)
    weights = rng.standard_normal(layer.forward(x).shape)  # loss = sum(out * weights): dL/dout = weights
    loss = lambda: float(np.sum(layer.forward(x) * weights))
    layer.forward(x)
    dx = layer.backward(weights)
    dW, db = layer.dW.copy(), layer.db.copy()
    for analytic, array in ((dx, x), (dW, W), (db, b)):
        assert parameter_error(analytic, numerical(loss, array)) < 1e-8


def test_the_first_convolution_computes_no_input_gradient():
    layer = F.FastConvolution(np.ones((3, 3, 1, 2)), np.zeros(2), need_dx=False)  # what the network builds first
    layer.forward(np.ones((2, 5, 5, 1)))
    assert layer.backward(np.ones((2, 3, 3, 2))) is None
    assert layer.dW.sum() == 2 * 9 * 2 * 9  # each weight sees 9 positions of 2 images, for both filters


@pytest.mark.parametrize(
    "size, stride, shape",
    [(2, 2, (2, 6, 6, 3)), (2, 2, (2, 7, 5, 2)), (3, 2, (2, 7, 7, 2)), (3, 1, (1, 5, 6, 2)), (2, 3, (2, 8, 8, 2))],
)
def test_pooling_forward_equals_the_loop_definition_and_backward_central_differences(size, stride, shape):
    rng = np.random.default_rng(2)
    x = rng.permutation(np.prod(shape)).reshape(shape) / 10.0  # distinct values: no ties
    layer = C.Pooling(size, stride)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, direct_max_pool(x, size, stride))
    weights = rng.standard_normal(out.shape)
    dx = layer.backward(weights)
    assert parameter_error(dx, numerical(lambda: float(np.sum(layer.forward(x) * weights)), x, h=1e-4)) < 1e-8


def test_pooling_routes_the_gradient_to_one_winner_per_window_even_on_ties():
    x = np.zeros((1, 2, 2, 1))  # a blank window: four equal maxima
    layer = C.Pooling(2, 2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    assert dx.sum() == 1.0 and dx[0, 0, 0, 0] == 1.0  # the first of equals takes it, as the max gate does


def test_spatial_batchnorm_normalizes_each_channel_and_its_gradient_is_exact():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 3, 2)) * [2.0, 5.0] + [1.0, -3.0]
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    layer = C.SpatialBatchNorm(gamma, beta, np.zeros(2), np.ones(2))
    layer.frozen = True
    out = layer.forward(x)
    normalized = (out - beta) / gamma
    np.testing.assert_allclose(normalized.mean(axis=(0, 1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(normalized.std(axis=(0, 1, 2)), 1, atol=1e-4)
    weights = rng.standard_normal(x.shape)
    dx = layer.backward(weights)
    loss = lambda: float(np.sum(layer.forward(x) * weights))
    assert parameter_error(dx, numerical(loss, x)) < 1e-7
    layer.forward(x)
    layer.backward(weights)
    assert parameter_error(layer.dgamma.copy(), numerical(loss, gamma)) < 1e-7


def test_to_image_and_flatten_only_reshape():
    rows = np.arange(2 * 12, dtype=float).reshape(2, 12)
    to_image = C.ToImage(3, 2, 2)  # CSV rows hold channel after channel
    images = to_image.forward(rows)
    assert images.shape == (2, 2, 2, 3) and images[0, 0, 1, 2] == rows[0, 2 * 4 + 0 * 2 + 1]
    np.testing.assert_array_equal(to_image.backward(images), rows)
    flatten = C.Flatten()
    assert flatten.forward(images).shape == (2, 12)
    np.testing.assert_array_equal(flatten.backward(flatten.forward(images)), images)


# --- the network: gradcheck, planted bugs ---------------------------------------------------------------

CNN = [
    "model.conv=[{filters: 4, kernel: 3, pad: 1, pool: 2},"
    " {filters: 6, kernel: 3, stride: 2, pool: 2, batchnorm: true, dropout: 0.2}]",
    "model.hidden=[{size: 12, dropout: 0.3}]",
]


def cnn_check(*overrides, entries=None):
    config = load_config(None, ["data.train=/nonexistent.csv", *CNN, *overrides])
    net = build_network(config, seed=0, dtype="float64")
    images, labels = synthetic_digits(24, seed=4)
    return gradcheck(net, images / 255.0, labels.astype(np.intp), batch=4, entries=entries)


def test_gradcheck_passes_for_a_cnn_with_batchnorm_dropout_and_pooling():
    result = cnn_check()
    assert result["passed"], result
    assert [row["param"] for row in result["params"]] == ["W1", "b1", "W2", "gamma2", "beta2", "W3", "b3", "W4", "b4"]
    assert all(row["rel_error"] < 1e-6 for row in result["params"])


def conv_forgets_bias_sum(self, dout):
    C_backward(self, dout)
    if self.b is not None:
        self.db[...] = dout.reshape(-1, self.W.shape[3])[0]
    return self._dx


def conv_transposed_weight_gradient(self, dout):
    C_backward(self, dout)
    self.dW[...] = self.dW[::-1, ::-1]  # the filter gradient flipped: a classic correlation/convolution slip
    return self._dx


def conv_input_gradient_without_overlap_sum(self, dout):
    C_backward(self, dout)
    return self._dx * 0.5 if self._dx is not None else None


def pool_routes_to_every_entry(self, dout):
    dx = np.zeros(self.x_shape, dtype=dout.dtype)
    oh, ow = dout.shape[1:3]
    for view in self._views(dx, oh, ow):
        view += dout
    return dx


_original_backward = F.FastConvolution.backward


def C_backward(self, dout):
    self._dx = _original_backward(self, dout)


@pytest.mark.parametrize(
    "method, plant, expected",
    [
        ("Convolution.backward", conv_forgets_bias_sum, "b1"),
        ("Convolution.backward", conv_transposed_weight_gradient, "W1"),
        ("Convolution.backward", conv_input_gradient_without_overlap_sum, "W1"),
        ("Pooling.backward", pool_routes_to_every_entry, "W1"),
    ],
)
def test_gradcheck_catches_planted_convolution_and_pooling_bugs(monkeypatch, method, plant, expected):
    cls, name = method.split(".")
    monkeypatch.setattr(F.FastConvolution if cls == "Convolution" else getattr(C, cls), name, plant)
    result = cnn_check()
    failed = {row["param"] for row in result["params"] if not row["passed"]}
    assert not result["passed"] and expected in failed


# --- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            [
                "model.conv=[{filters: 8, kernel: 3, pool: 2}, {filters: 8, kernel: 5, pool: 2}, {filters: 8, kernel: 5}]"
            ],
            "model.conv[2]: a 5x5 kernel does not fit the 4x4 maps left by model.conv[1]",
        ),
        (["model.conv=[{filters: 8, kernel: 30}]"], "a 30x30 kernel does not fit the 28x28 maps left by the input"),
        (["model.conv=[{filters: 8, kernel: 3, stride: 3, pool: 16}]"], "a 16x16 pool does not fit the 9x9 maps"),
        (["model.input_shape=[1, 28, 27]"], "'model.input_shape' is [1, 28, 27] (756 values per row)"),
        (["model.input_shape=[1, 28]"], "expected [channels, height, width]"),
        (["model.conv=[{filters: 0}]"], "'model.conv[0].filters' is 0"),
        (["model.conv=[{filters: 8, kernal: 3}]"], "unknown key 'model.conv[0].kernal' (did you mean 'kernel'?)"),
        (
            ["model.conv=[{filters: 8, kernel: 3, pad: 3}]"],
            "'model.conv[0].pad' is 3; expected less than the kernel size 3",
        ),
    ],
)
def test_bad_conv_configs_fail_when_read_naming_the_block(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


@pytest.mark.parametrize("name", ["cnn", "best-cnn"])
def test_shipped_cnn_configs_are_valid_and_number_parameters_in_network_order(name):
    config = load_config(ROOT / "configs" / f"{name}.yaml")
    net = build_network(config)
    weights = [k for k in net.params if k.startswith("W")]
    assert weights == [f"W{i}" for i in range(1, len(config.model.conv) + len(config.model.hidden) + 2)]
    assert list(net.layers)[0] == "ToImage" and "Flatten" in net.layers
    assert net.params["W1"].shape[:3] == (config.model.conv[0].kernel,) * 2 + (1,)


def test_cli_gradcheck_on_a_cnn_config_samples_entries_and_passes(tmp_path):
    result = run_cli(
        "gradcheck",
        "--config",
        ROOT / "configs" / "cnn.yaml",
        "--entries",
        "40",
        "--json",
        "--set",
        f"data.train={tmp_path}/none.csv",
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["passed"] and figures["layers"] == "1x28x28-conv32-pool2-conv64-pool2-128-10"


# --- training end to end ---------------------------------------------------------------------------------


def test_a_small_cnn_learns_resumes_exactly_and_predicts_from_its_model_file(tmp_path):
    images, labels = synthetic_digits(500, seed=5)
    data = write_digit_csv(tmp_path / "train.csv", images, labels)
    common = [
        "--set",
        "model.conv=[{filters: 4, kernel: 3, pad: 1, pool: 2}]",
        "--set",
        "model.hidden=[{size: 16}]",
        "--set",
        "train.optimizer={name: adam, lr: 0.003}",
        "--data",
        data,
        "--quiet",
        "--threads",
        "1",
    ]
    whole, part = tmp_path / "whole", tmp_path / "part"
    result = run_cli("fit", "--epochs", "4", "--out", whole, "--json", *common)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["val_accuracy"] > 0.9
    assert run_cli("fit", "--epochs", "2", "--out", part, *common).exit_code == 0
    assert run_cli("fit", "--resume", part, "--epochs", "4", "--quiet", "--threads", "1").exit_code == 0
    with np.load(whole / "model.npz", allow_pickle=False) as a, np.load(part / "model.npz", allow_pickle=False) as b:
        for key in ("W1", "b1", "W2", "W3"):
            np.testing.assert_array_equal(a[key], b[key])
    test_csv = write_digit_csv(tmp_path / "test.csv", images[:50], None)
    result = run_cli("predict", "--model", whole / "model.npz", "--data", test_csv, "--out", tmp_path / "sub.csv")
    assert result.exit_code == 0, result.output
    predicted = np.loadtxt(tmp_path / "sub.csv", delimiter=",", skiprows=1, dtype=int)[:, 1]
    assert np.mean(predicted == labels[:50]) > 0.9


def test_a_cnn_evaluates_in_bounded_chunks():
    config = load_config(ROOT / "configs" / "cnn.yaml")
    net = build_network(config)
    assert 100 <= net.eval_batch < 10_000
    x = np.random.default_rng(0).random((net.eval_batch + 7, 784)).astype(np.float32)
    whole = net.predict(x, batch_size=10_000)
    np.testing.assert_allclose(whole[-7:], net.predict(x[-7:]), rtol=1e-5, atol=1e-5)


def test_compare_speed_grows_the_filter_counts_of_a_cnn(tmp_path):
    result = run_cli(
        "compare-speed",
        "--set",
        "model.conv=[{filters: 2, kernel: 3, pool: 2}]",
        "--set",
        "model.hidden=[]",
        "--set",
        f"data.train={tmp_path}/none.csv",
        "--sizes",
        "1,2",
        "--batch",
        "4",
        "--budget",
        "0.2",
        "--steps",
        "1",
        "--json",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert [row["layers"] for row in figures["sizes"]] == ["1x28x28-conv1-pool2-10", "1x28x28-conv2-pool2-10"]
    assert figures["sizes"][1]["parameters"] > figures["sizes"][0]["parameters"]
    assert figures["training_check"]["max_loss_difference"] < 1e-8


@pytest.mark.parametrize(
    "size,stride,shape", [(2, 2, (3, 8, 8, 4)), (3, 2, (2, 9, 7, 3)), (2, 2, (2, 7, 9, 2)), (3, 1, (2, 6, 6, 2))]
)
def test_the_textbooks_argmax_pooling_equals_the_fast_pooling_in_value_and_gradient(size, stride, shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    x[0, :2, :2, 0] = 1.5  # a tie inside a window: both versions pick its first entry
    dout_shape = (shape[0], (shape[1] - size) // stride + 1, (shape[2] - size) // stride + 1, shape[3])
    dout = rng.standard_normal(dout_shape)
    fast, reference = C.Pooling(size, stride), C.ArgmaxPooling(size, stride)
    assert np.array_equal(fast.forward(x), reference.forward(x))
    assert np.array_equal(fast.backward(dout), reference.backward(dout))
    # and the reference is right on its own: its gradient is the central difference of sum(out * dout)
    loss = lambda: float(np.sum(reference.forward(x) * dout))
    from bp_train.nn.gradient import numerical_gradient

    x += 1e-3 * np.sign(rng.standard_normal(shape)) * rng.random(shape)  # break the tie: a kink
    reference.forward(x)
    assert np.allclose(reference.backward(dout), numerical_gradient(loss, x, h=1e-7), atol=1e-6)
