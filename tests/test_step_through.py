"""The step-through: one digit forward and backward through a network, layer by layer (views/step_through.py),
served to the page (serve/steps.py) and drawn by `explain network --png`.

The oracles: central differences through the rest of the network for every layer's dL/d(output); central
differences and `Network.gradient` for the parameters' gradients; the loss itself for a learning step."""

import numpy as np
import pytest

from bp_train.nn.fast_layers import FastBatchNorm
from bp_train.nn.layers import BatchNorm, ReLU
from bp_train.nn.network import ConvBlock, Network
from bp_train.views.step_through import as_maps, check_sample, learn, walk


def small_cnn(**extra):
    network = Network(
        784,
        [24],
        10,
        conv=[ConvBlock(6, 3, pad=1, pool=2), ConvBlock(8, 3, pad=1, pool=2, batchnorm=True, dropout=0.25)],
        input_shape=[1, 28, 28],
        batchnorm=True,
        dropout=0.5,
        dtype=np.float64,
        **extra,
    )
    rng = np.random.default_rng(5)
    for key, buffer in network.buffers.items():  # running averages as a trained network has them
        buffer[...] = rng.uniform(0.5, 1.5, buffer.shape) if "var" in key else rng.normal(0, 0.2, buffer.shape)
    return network


def digit(seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((28, 28))
    x[6:22, 12:16] = rng.uniform(0.5, 1, (16, 4))  # a stroke, with some noise around it
    return (x + rng.uniform(0, 0.1, (28, 28))).reshape(1, 784)


NETWORKS = {
    "mlp with BatchNorm and dropout": lambda: Network(784, [32, 16], 10, batchnorm=True, dropout=0.3, dtype=np.float64),
    "cnn with BatchNorm and dropout": small_cnn,
}


@pytest.mark.parametrize("kind", NETWORKS)
def test_the_gradient_arriving_at_every_layer_equals_central_differences_through_the_rest(kind):
    network, x, label = NETWORKS[kind](), digit(), 3
    walked = walk(network, x, label)
    layers = list(network.layers.values())
    t = np.array([label])
    rng = np.random.default_rng(1)
    for i, step in enumerate(walked.layers):
        out = x
        for layer in layers[: i + 1]:
            out = layer.forward(out)  # this layer's output, in the network's own (NHWC) layout
        out = out.copy()
        for flat in rng.choice(out.size, 4, replace=False):
            index = np.unravel_index(flat, out.shape)

            def loss_from(value, index=index):
                moved = out.copy()
                moved[index] = value
                for layer in layers[i + 1 :]:
                    moved = layer.forward(moved)
                return network.last_layer.forward(moved, t)

            h = 1e-6
            numeric = (loss_from(out[index] + h) - loss_from(out[index] - h)) / (2 * h)
            unit = np.zeros_like(out)
            unit[index] = 1
            shown = float(np.sum(as_maps(unit[0]) * step.grad))  # the walk's entry at the same place
            assert shown == pytest.approx(numeric, rel=1e-5, abs=1e-9), (step.name, index)


@pytest.mark.parametrize("kind", NETWORKS)
def test_the_parameters_gradients_agree_with_central_differences(kind):
    checked = check_sample(NETWORKS[kind](), digit(), 7, per_param=4)
    assert len({e["param"] for e in checked["entries"]}) >= 8
    assert checked["max_relative_error"] < 1e-6


def test_with_no_dropout_or_batchnorm_the_walk_is_network_gradient_for_one_digit():
    network = Network(784, [20], 10, conv=[ConvBlock(4, 3, pad=1, pool=2)], input_shape=[1, 28, 28], dtype=np.float64)
    walked = walk(network, digit(), 2)
    expected = network.gradient(digit(), np.array([2]))
    assert set(walked.param_grads()) == set(expected)
    for key, grad in walked.param_grads().items():
        np.testing.assert_allclose(grad, expected[key], rtol=1e-12, atol=1e-15)


def test_a_wrong_local_rule_is_caught_by_the_check(monkeypatch):
    monkeypatch.setattr(ReLU, "backward", lambda self, dout: dout)  # forgets the mask
    assert check_sample(NETWORKS["mlp with BatchNorm and dropout"](), digit(), 7)["max_relative_error"] > 1e-2


def test_a_learning_step_lowers_this_digits_loss_and_the_walk_reads_the_mask_the_relu_cached():
    network = small_cnn()
    before = walk(network, digit(), 4)
    learn(network, before, 0.01)
    after = walk(network, digit(), 4)
    assert after.loss < before.loss
    relu = next(step for step in after.layers if step.kind == "Relu")
    np.testing.assert_array_equal(relu.mask, relu.output > 0)
    pooled = next(step for step in after.layers if step.kind == "Pooling")
    assert pooled.output.shape == (6, 14, 14)  # maps as (C, H, W): one picture per filter


def test_the_lessons_batchnorm_in_evaluation_has_the_fixed_scales_backward():
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5), rng.uniform(0.5, 2, 5)
    x, dout = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    lesson = BatchNorm(gamma, beta, mean.copy(), var.copy())
    fast = FastBatchNorm(gamma, beta, mean.copy(), var.copy())
    for layer in (lesson, fast):
        layer.train = False
        layer.forward(x)
    dx = lesson.backward(dout)
    np.testing.assert_allclose(dx, dout * gamma / np.sqrt(var + 1e-5))
    np.testing.assert_allclose(fast.backward(dout), dx)
    np.testing.assert_allclose(fast.dgamma, lesson.dgamma)
    np.testing.assert_allclose(lesson.dgamma, np.sum(dout * (x - mean) / np.sqrt(var + 1e-5), axis=0))
    np.testing.assert_allclose(fast.dbeta, dout.sum(axis=0))


def test_pages_are_bounded_and_each_learns_on_its_own_copy():
    from types import SimpleNamespace

    from bp_train.config.loading import config_from_dict
    from bp_train.data.images import Prepared
    from bp_train.serve.steps import RequestError, StepThrough

    config = config_from_dict({"name": "t", "model": {"hidden": [{"size": 8}], "dtype": "float32"}}, "test")
    from bp_train.config.build import build_network

    network = build_network(config)
    member = SimpleNamespace(name="m", network=network, config=config)
    steps = StepThrough(SimpleNamespace(members=[member]))
    steps.max_pages = 3
    picture = Prepared((digit() * 255).reshape(28, 28), "a stroke")
    sessions = [steps.trace({"label": "3"}, picture)["session"] for _ in range(5)]
    assert len(steps.pages) == 3 and set(steps.pages) == set(sessions[2:])
    with pytest.raises(RequestError) as dropped:
        steps.layer({"session": sessions[0], "layer": "Affine1"})
    assert dropped.value.status == 404
    kept = network.params["W1"].copy()
    result = steps.learn({"session": sessions[4], "rate": "0.5"})
    assert result["after"]["loss"] < result["before"]["loss"]
    np.testing.assert_array_equal(network.params["W1"], kept)  # the model's network is untouched
    other = steps.layer({"session": sessions[3], "layer": "Affine1", "pass": "forward"})
    again = steps.layer({"session": sessions[2], "layer": "Affine1", "pass": "forward"})
    assert other["values"] == again["values"]  # the other pages did not learn


def test_the_sheet_shows_every_layers_own_numbers_forward_and_back():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bp_train.views.step_through import draw_walk, mosaic

    network = small_cnn()
    walked = walk(network, digit(), 1)
    figure = draw_walk(walked, network, "a small cnn", plt)
    images = [axis.get_images()[0].get_array() for axis in figure.axes if axis.get_images()]
    assert len(images) == 2 * len(walked.layers)
    for step, forward, backward in zip(walked.layers, images[::2], images[1::2]):
        np.testing.assert_array_equal(np.ma.filled(forward, np.nan), mosaic(step.output))
        np.testing.assert_array_equal(np.ma.filled(backward, np.nan), mosaic(step.grad))
    maps = walked.layers[1].output  # 6 maps of 28x28, tiled 3 to a row with a blank line between
    sheet = mosaic(maps)
    np.testing.assert_array_equal(sheet[29:57, 0:28], maps[3])
    assert np.isnan(sheet[28, :]).all()
    plt.close(figure)
