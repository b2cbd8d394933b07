"""Each layer's backward against an independent oracle: the textbook's hand-worked graph, or central
differences of its own forward in float64."""

import warnings

import numpy as np
import pytest

from bp_train.nn import layers as L
from bp_train.nn.gradient import numerical_gradient, relative_error


def test_apple_and_tax_graph_matches_the_textbook():
    # 2 apples at 100 each, 10% tax: price 220; d(price)/d(apple) = 2.2, /d(apple_num) = 110, /d(tax) = 200.
    mul_apple, mul_tax = L.Mul(), L.Mul()
    apple_price = mul_apple.forward(100, 2)
    price = mul_tax.forward(apple_price, 1.1)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert price == pytest.approx(220)
    assert (dapple, dapple_num, dtax) == (pytest.approx(2.2), pytest.approx(110), pytest.approx(200))


def test_apple_and_orange_graph_with_an_add_gate():
    # Textbook: 2 apples at 100, 3 oranges at 150, tax 1.1 -> price 715; dapple 2.2, dorange 3.3,
    # dapple_num 110, dorange_num 165, dtax 650.
    mul_apple, mul_orange, add, mul_tax = L.Mul(), L.Mul(), L.Add(), L.Mul()
    total = add.forward(mul_apple.forward(100, 2), mul_orange.forward(150, 3))
    price = mul_tax.forward(total, 1.1)
    dtotal, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dtotal)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    assert price == pytest.approx(715)
    assert [dapple, dapple_num, dorange, dorange_num, dtax] == pytest.approx([2.2, 110, 3.3, 165, 650])


def check_input_gradient(layer, x, tol=1e-7):
    """Backward's dL/dx for L = sum(forward(x) * R) (R fixed random) against central differences."""
    weights = np.random.default_rng(1).standard_normal(layer.forward(x.copy()).shape)
    loss = lambda: float(np.sum(layer.forward(x) * weights))
    numeric = numerical_gradient(loss, x)
    layer.forward(x)
    dout = weights.copy()
    analytic = layer.backward(dout)
    assert np.array_equal(dout, weights), "backward must not modify the upstream gradient"
    assert relative_error(analytic, numeric).max() < tol
    return weights


def check_parameter_gradients(layer, x, weights, params):
    """The gradients backward stores (`dW` for W, ...) against central differences of the same loss."""
    loss = lambda: float(np.sum(layer.forward(x) * weights))
    layer.forward(x)
    layer.backward(weights)
    for name, param in params.items():
        assert relative_error(getattr(layer, name), numerical_gradient(loss, param)).max() < 1e-7, name


rng = np.random.default_rng(0)


def away_from_zero(shape):
    """Inputs with |x| >= 0.1, so no central difference straddles ReLU's kink at 0."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


@pytest.mark.parametrize("layer_class", [L.ReLU, L.Sigmoid, L.Tanh])
def test_activation_backward_matches_central_differences(layer_class):
    check_input_gradient(layer_class(), away_from_zero((4, 7)))


def test_affine_backward_matches_central_differences_for_input_weights_and_bias():
    x = rng.standard_normal((3, 2, 5))  # any input shape: flattened to (3, 10)
    W, b = rng.standard_normal((10, 4)), rng.standard_normal(4)
    layer = L.Affine(W, b)
    weights = check_input_gradient(layer, x)
    check_parameter_gradients(layer, x, weights, {"dW": W, "db": b})
    assert layer.backward(weights).shape == x.shape


def test_affine_gives_an_image_batch_its_gradient_in_the_images_shape():
    x, W, b = rng.standard_normal((3, 1, 2, 2)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    layer = L.Affine(W, b)
    out = layer.forward(x)
    assert np.allclose(out, x.reshape(3, 4) @ W + b)
    weights = check_input_gradient(layer, x)
    assert weights is not None and layer.backward(np.ones((3, 2))).shape == (3, 1, 2, 2)


def test_batchnorm_backward_matches_central_differences():
    x = rng.standard_normal((6, 4)) * 3 + 1
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    layer = L.BatchNorm(gamma, beta, np.zeros(4), np.ones(4))  # (its running averages move: no matter)
    weights = check_input_gradient(layer, x)
    check_parameter_gradients(layer, x, weights, {"dgamma": gamma, "dbeta": beta})


def test_batchnorm_normalizes_in_training_and_uses_running_averages_in_evaluation():
    x = rng.standard_normal((500, 3)) * 5 + 7
    layer = L.BatchNorm(np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), momentum=0.0)
    out = layer.forward(x)
    assert np.allclose(out.mean(axis=0), 0, atol=1e-9) and np.allclose(out.std(axis=0), 1, atol=1e-3)
    layer.train = False  # momentum 0: the running averages are exactly this batch's statistics
    assert np.allclose(layer.forward(x), out, atol=1e-6)


def test_dropout_backward_matches_central_differences_with_a_frozen_mask():
    layer = L.Dropout(0.5, np.random.default_rng(0))
    x = rng.standard_normal((5, 8))
    mask = layer.draw_mask(x)
    layer.draw_mask = lambda x: mask  # one fixed mask: the function central differences need
    check_input_gradient(layer, x)


def test_dropout_is_inverted_and_off_in_evaluation():
    layer = L.Dropout(0.4, np.random.default_rng(0))
    x = np.ones((200, 500))
    out = layer.forward(x)
    assert np.unique(out) == pytest.approx([0.0, 1 / 0.6])
    assert abs(np.mean(out == 0) - 0.4) < 0.01  # the ratio is honoured
    assert abs(out.mean() - 1.0) < 0.02  # expected activation unchanged
    layer.train = False
    assert layer.forward(x) is x


def test_softmax_with_loss_gradient_is_y_minus_t_over_n_and_matches_central_differences():
    x = rng.standard_normal((4, 10))
    t = np.array([3, 0, 9, 3])
    layer = L.SoftmaxWithLoss()
    numeric = numerical_gradient(lambda: layer.forward(x, t), x)
    layer.forward(x, t)
    analytic = layer.backward()
    assert relative_error(analytic, numeric).max() < 1e-7
    y = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    assert np.allclose(analytic, (y - np.eye(10)[t]) / 4)


def test_softmax_with_loss_accepts_one_hot_labels_and_is_stable_for_huge_scores():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    integer, one_hot = L.SoftmaxWithLoss(), L.SoftmaxWithLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = integer.forward(x, np.array([0, 2]))
        assert loss == pytest.approx(np.log(3) / 2)  # first row is certain (loss 0), second is uniform
        assert one_hot.forward(x, np.eye(3)[[0, 2]]) == pytest.approx(loss)
        assert np.allclose(integer.backward(), one_hot.backward())


def test_sigmoid_saturates_without_overflow_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = L.Sigmoid().forward(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == 0.5
    assert np.all(np.diff(out) >= 0)


def test_layers_keep_float32_in_float32():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for layer in (L.ReLU(), L.Sigmoid(), L.Tanh()):
        assert layer.forward(x).dtype == np.float32
        assert layer.backward(np.ones_like(x)).dtype == np.float32
