"""The exercises: one per node of the lesson, each a class whose backward pass the student writes.

For every exercise this file says which of the lesson's classes it is, what backward must compute, a
hand-worked example with its answer (the textbook's numbers where it has them), how to make inputs for
the gradient check, and a hint for the typical bug behind each wrong gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Exercise:
    name: str  # what the student types: `bp-train exercise new relu`
    module: str  # where bp-train's own class lives
    cls: str  # its name, which the student's file defines too
    derivative: str  # what backward must return, stated as the docstring of the blank backward
    make: Callable  # make(Class, rng) -> (layer, forward arguments, names of those arguments)
    example: Callable  # example(Class) -> [(what, got, expected)]: the hand-worked example
    params: tuple[str, ...] = ()  # the parameters whose gradients backward stores (W -> layer.dW)
    imports: tuple[str, ...] = ()  # lines the exercise file needs besides `import numpy as np` (never bp-train)
    helpers: tuple[str, ...] = ()  # the lesson's functions the class calls, copied into the file (module.name)
    hints: dict = field(default_factory=dict)  # gradient name -> the typical bug behind a wrong one
    loss: bool = False  # a loss node: forward returns the loss itself, backward takes dout = 1


def away_from_zero(rng, shape, margin=0.2):
    """Random values at least `margin` from 0: central differences across a kink (ReLU, max) mean nothing."""
    values = rng.uniform(margin, 2.0, shape)
    return values * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """Random values no two of which are within 0.05: each window of a max pool has one clear winner."""
    return rng.permutation(np.arange(np.prod(shape)) * 0.05 + rng.uniform(0, 0.01)).reshape(shape) - 1.0


def _pair(Class, rng):
    x, y = away_from_zero(rng, (4,)), away_from_zero(rng, (4,))
    return Class(), (x, y), ("x", "y")


def _gate_example(Class, inputs, dout, expected):
    """The gate at the textbook's numbers: its output, then one gradient per input (dx, or dx and dy)."""
    gate = Class()
    got = gate.forward(*inputs)
    back = gate.backward(*dout)
    back, wanted = (back, expected[1]) if len(inputs) == 2 else ((back,), (expected[1],))
    return [("forward", got, expected[0]), *zip(("dx", "dy"), back, wanted)]


def _one_input(Class, rng):
    """An activation and a batch it never sees near its kink."""
    return Class(), (away_from_zero(rng, (4, 5)),), ("x",)


def _affine(Class, rng):
    """A batch of 4 small images (4, 1, 2, 3), as a CNN's dense layer or an MNIST batch of (N, 1, 28, 28)
    gets them: Affine flattens each to 6 numbers, and dx must come back in the images' shape."""
    W, b = rng.standard_normal((6, 3)), rng.standard_normal(3)
    return Class(W, b), (rng.standard_normal((4, 1, 2, 3)),), ("x",)


def _affine_example(Class):
    layer = Class(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]), np.ones(3))
    out = layer.forward(np.array([[1.0, 2.0]]))
    dx = layer.backward(np.ones((1, 3)))
    return [
        ("forward", out, [[2.0, 3.0, 9.0]]),
        ("dx", dx, [[3.0, 4.0]]),
        ("dW", layer.dW, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]),
        ("db", layer.db, [1.0, 1.0, 1.0]),
    ]


def _softmax(Class, rng):
    return Class(), (rng.standard_normal((4, 5)), np.array([0, 3, 1, 4])), ("x", "t")


def _softmax_example(Class):
    layer = Class()
    loss = layer.forward(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]), np.array([0, 1]))
    dx = layer.backward(1.0)  # y = (1/2, 1/2) and (3/4, 1/4); dx = (y - t) / N with N = 2
    return [("loss", loss, (np.log(2.0) + np.log(4.0)) / 2), ("dx", dx, [[-0.25, 0.25], [0.375, -0.375]])]


def _dropout(Class, rng):
    layer = Class(0.5, np.random.default_rng(3))
    return layer, (rng.standard_normal((4, 6)),), ("x",)


def _dropout_example(Class):
    layer = Class(0.5, np.random.default_rng(3))
    x = np.arange(1.0, 9.0).reshape(2, 4)
    out = layer.forward(x)
    kept = out != 0  # inverted dropout: a kept unit is doubled (1 / (1 - 0.5)), a dropped one is 0
    dx = layer.backward(np.ones_like(x))
    return [("forward", out, np.where(kept, 2 * x, 0.0)), ("dx", dx, np.where(kept, 2.0, 0.0))]


def _batchnorm(Class, rng):
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    return Class(gamma, beta, np.zeros(3), np.ones(3)), (rng.standard_normal((5, 3)),), ("x",)


def _batchnorm_example(Class):
    layer = Class(np.array([2.0]), np.array([0.5]), np.zeros(1), np.ones(1), eps=0.0)
    out = layer.forward(np.array([[1.0], [3.0]]))  # mean 2, std 1: xhat = -1, 1
    dx = layer.backward(np.array([[1.0], [0.0]]))
    # dbeta = 1, dgamma = -1; dxhat = (2, 0), so dx = (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) / std
    #   = ((2, 0) - 1 - (-1, 1) * (-1)) = (0, 0): at two samples the normalized output cannot move
    return [
        ("forward", out, [[-1.5], [2.5]]),
        ("dgamma", layer.dgamma, [-1.0]),
        ("dbeta", layer.dbeta, [1.0]),
        ("dx", dx, [[0.0], [0.0]]),
    ]


def _convolution(Class, rng):
    W, b = rng.standard_normal((2, 2, 2, 3)), rng.standard_normal(3)
    return Class(W, b, 1, 1), (rng.standard_normal((2, 4, 4, 2)),), ("x",)


def _convolution_example(Class):
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # 1 2 3 / 4 5 6 / 7 8 9
    layer = Class(np.ones((2, 2, 1, 1)), np.zeros(1))
    out = layer.forward(x)  # each 2x2 patch summed
    dx = layer.backward(np.ones((1, 2, 2, 1)))  # each pixel gets one 1 per patch that covers it
    return [
        ("forward", out[0, :, :, 0], [[12.0, 16.0], [24.0, 28.0]]),
        ("dx", dx[0, :, :, 0], [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]),
        ("dW", layer.dW[:, :, 0, 0], [[12.0, 16.0], [24.0, 28.0]]),
        ("db", layer.db, [4.0]),
    ]


def _pooling(Class, rng):
    return Class(2, 2), (distinct(rng, (2, 4, 4, 3)),), ("x",)


def _pooling_example(Class):
    x = np.array([[1.0, 2.0, 5.0, 0.0], [3.0, 4.0, 1.0, 6.0], [0.0, 1.0, 2.0, 2.5], [9.0, 0.0, 3.0, 1.0]])
    layer = Class(2, 2)
    out = layer.forward(x.reshape(1, 4, 4, 1))
    dx = layer.backward(np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 2, 2, 1))
    return [
        ("forward", out[0, :, :, 0], [[4.0, 6.0], [9.0, 3.0]]),
        ("dx", dx[0, :, :, 0], [[0, 0, 0, 0], [0, 10, 0, 20], [0, 0, 0, 0], [30, 0, 40, 0]]),
    ]


ELEMENTWISE = "dL/dx = dout * d(out)/dx, element by element (dout is dL/d(out), of out's shape)"
EXERCISES = {
    e.name: e
    for e in [
        Exercise(
            "mul",
            "bp_train.nn.layers",
            "Mul",
            "Return (dL/dx, dL/dy) for z = x * y: dout * y and dout * x.",
            _pair,
            lambda C: _gate_example(C, (100.0, 2.0), (1.1,), (200.0, (2.2, 110.0))),
            hints={"dx": "each input's gradient is dout times the *other* input"},
        ),
        Exercise(
            "add",
            "bp_train.nn.layers",
            "Add",
            "Return (dL/dx, dL/dy) for z = x + y: dout and dout.",
            _pair,
            lambda C: _gate_example(C, (200.0, 450.0), (1.1,), (650.0, (1.1, 1.1))),
            hints={"dx": "an add gate passes dout on unchanged, to both inputs"},
        ),
        Exercise(
            "max",
            "bp_train.nn.layers",
            "Max",
            "Return (dL/dx, dL/dy) for z = max(x, y): dout goes to the "
            "larger input (x on a tie), 0 to the other; remember in forward which one won.",
            _pair,
            lambda C: _gate_example(C, (3.0, 2.0), (1.0,), (3.0, (1.0, 0.0))),
            hints={"dx": "the max gate routes dout to the input that won, and gives the other 0"},
        ),
        Exercise(
            "copy",
            "bp_train.nn.layers",
            "Copy",
            "Return dL/dx for (z1, z2) = (x, x): the two gradients "
            "that arrive, dout1 + dout2, summed (the multivariate chain rule).",
            lambda C, rng: (C(), (away_from_zero(rng, (4,)),), ("x",)),
            lambda C: _gate_example(C, (3.0,), (2.0, 5.0), ((3.0, 3.0), 7.0)),
            hints={"dx": "a value used twice receives the sum of both branches' gradients"},
        ),
        Exercise(
            "relu",
            "bp_train.nn.layers",
            "ReLU",
            f"Return dL/dx for out = max(0, x): {ELEMENTWISE}; the "
            "derivative is 1 where x > 0 and 0 elsewhere (forward kept the mask).",
            _one_input,
            lambda C: [
                (
                    "dx",
                    (
                        lambda r: (
                            r.forward(np.array([[1.0, -0.5], [-2.0, 3.0]])),
                            r.backward(np.array([[1.0, 2.0], [3.0, 4.0]])),
                        )[1]
                    )(C()),
                    [[1.0, 0.0], [0.0, 4.0]],
                )
            ],
            hints={"dx": "the gradient flows only through units that were active: multiply dout by the mask"},
        ),
        Exercise(
            "sigmoid",
            "bp_train.nn.layers",
            "Sigmoid",
            f"Return dL/dx for out = 1 / (1 + exp(-x)): "
            f"{ELEMENTWISE}; the derivative is out * (1 - out), from the output forward kept.",
            _one_input,
            lambda C: [
                ("dx", (lambda s: (s.forward(np.zeros((1, 1))), s.backward(np.ones((1, 1)))))(C())[1], [[0.25]])
            ],
            hints={"dx": "d sigmoid/dx is y * (1 - y), with y the forward output (not the input x)"},
        ),
        Exercise(
            "tanh",
            "bp_train.nn.layers",
            "Tanh",
            f"Return dL/dx for out = tanh(x): {ELEMENTWISE}; the derivative is 1 - out^2.",
            _one_input,
            lambda C: [
                ("dx", (lambda s: (s.forward(np.zeros((1, 1))), s.backward(np.full((1, 1), 2.0))))(C())[1], [[2.0]])
            ],
            hints={"dx": "d tanh/dx is 1 - y^2, with y the forward output"},
        ),
        Exercise(
            "affine",
            "bp_train.nn.layers",
            "Affine",
            "Return dL/dx = dout . W^T, reshaped to x's shape (self.x_shape: x may be a batch of images), and "
            "store dL/dW = x^T . dout in self.dW and dL/db = the sum of dout over the batch in self.db.",
            _affine,
            _affine_example,
            params=("W", "b"),
            hints={
                "dx": "dx = dout . W^T, reshaped back to x's shape (self.x_shape): check which matrix is transposed",
                "dW": "dW = x^T . dout has W's shape: the input transposed, times dout",
                "db": "db sums dout over the batch (axis 0), one value per output unit",
            },
        ),
        Exercise(
            "softmax-with-loss",
            "bp_train.nn.layers",
            "SoftmaxWithLoss",
            "Return dL/dx = (y - t) / N for "
            "the mean cross-entropy of softmax(x): y the softmax forward kept, t the one-hot labels, N the "
            "batch size.",
            _softmax,
            _softmax_example,
            loss=True,
            hints={
                "dx": "dx = (y - t) / N: subtract 1 at each row's true class, then divide by "
                "the batch size N (the loss is a mean)"
            },
        ),
        Exercise(
            "dropout",
            "bp_train.nn.layers",
            "Dropout",
            "Return dL/dx = dout * mask: the same mask forward applied "
            "(self.mask, already scaled by 1 / (1 - ratio)); in evaluation mode (no mask) dout itself.",
            _dropout,
            _dropout_example,
            hints={"dx": "multiply dout by the very mask forward used (self.mask), scaled by 1 / (1 - ratio)"},
        ),
        Exercise(
            "batchnorm",
            "bp_train.nn.layers",
            "BatchNorm",
            "Store dL/dgamma = sum(dout * xn) and dL/dbeta = sum(dout), both "
            "over the batch (axis 0), and return dL/dx, walking the graph back node by node: dxn = dout * gamma; "
            "dxc = dxn / std; dstd = -sum(dxn * xc / std^2); dvar = 0.5 * dstd / std; dxc += (2 / N) * xc * dvar; "
            "dmu = sum(dxc); dx = dxc - dmu / N.",
            _batchnorm,
            _batchnorm_example,
            params=("gamma", "beta"),
            hints={
                "dx": "the batch's mean and variance depend on x too: dx needs the two mean terms, each a "
                "mean over the batch (axis 0)",
                "dgamma": "dgamma = sum over the batch (axis 0) of dout * xn, one value per feature",
                "dbeta": "dbeta = sum over the batch (axis 0) of dout, one value per feature",
            },
        ),
        Exercise(
            "convolution",
            "bp_train.nn.conv",
            "Convolution",
            "Store dL/dW = col^T . dout (reshaped to W's "
            "shape) and dL/db = the sum of dout over batch and positions, and return dL/dx = col2im(dout . W^T): "
            "every patch entry's gradient added back to the pixel it was copied from.",
            _convolution,
            _convolution_example,
            params=("W", "b"),
            imports=("from numpy.lib.stride_tricks import sliding_window_view",),
            helpers=("bp_train.nn.conv.output_size", "bp_train.nn.conv.im2col", "bp_train.nn.conv.col2im"),
            hints={
                "dx": "col2im must add each patch entry's gradient to the very pixel im2col copied it from "
                "(p + i * stride, q + j * stride), summing where patches overlap",
                "dW": "dW = col^T . dout, reshaped to (FH, FW, C, FN)",
                "db": "db sums dout over N, OH and OW",
            },
        ),
        Exercise(
            "pooling",
            "bp_train.nn.conv",
            "ArgmaxPooling",
            "Return dL/dx: each window's dout goes to the "
            "entry that was its maximum (self.arg_max), every other entry gets 0; col2im puts the windows "
            "back into the picture.",
            _pooling,
            _pooling_example,
            imports=("from numpy.lib.stride_tricks import sliding_window_view",),
            helpers=("bp_train.nn.conv.output_size", "bp_train.nn.conv.im2col", "bp_train.nn.conv.col2im"),
            hints={"dx": "route each output's dout to its window's arg-max only (the max gate), then col2im"},
        ),
    ]
}
# One line each for `exercise list`, in the lesson's order.
TOPICS = {
    "mul": "the multiply gate (the textbook's apples)",
    "add": "the add gate",
    "max": "the max gate",
    "copy": "a branch: one value used twice",
    "relu": "ReLU",
    "sigmoid": "the sigmoid",
    "tanh": "tanh",
    "affine": "x . W + b, with dW and db",
    "softmax-with-loss": "softmax and cross-entropy, fused",
    "dropout": "inverted dropout",
    "batchnorm": "batch normalization, with dgamma and dbeta",
    "convolution": "convolution by im2col, with dW and db (col2im on the way back)",
    "pooling": "max pooling, the textbook's arg-max version",
}
