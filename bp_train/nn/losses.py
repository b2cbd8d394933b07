"""The output of a network and its loss, three ways: the choices of `model.loss`.

Read after `layers.py`. The network ends in class scores x (the last Affine's output); a loss head turns
them into outputs y and a loss, and backward gives dL/dx. `layers.SoftmaxWithLoss` fuses softmax and
cross-entropy into the famous (y - t) / N. Here the same thing is taken apart, and the classic loss of
the early backprop papers is added:

    softmax_cross_entropy       SoftmaxWithLoss, fused: dL/dx = (y - t) / N               (the default)
    softmax_then_cross_entropy  Softmax, then CrossEntropy, two nodes: the chain rule through the full
                                softmax Jacobian gives exactly the fused gradient (a test checks it)
    mse                         Sigmoid, then MeanSquaredError against one-hot labels:
                                dL/dx = (y - t) * y * (1 - y) / N, the "delta" of the classic derivation

Every head has `forward(x, t)` -> loss, `backward(dout=1)` -> dL/dx, `y` (the latest outputs, whose
argmax is the prediction) and `probabilities(x)` for `predict --proba`.
"""

from __future__ import annotations

import numpy as np

from .layers import Sigmoid, SoftmaxWithLoss, softmax


def one_hot(t: np.ndarray, classes: int, dtype) -> np.ndarray:
    """Labels [2, 0] -> rows [[0, 0, 1], [1, 0, 0]] (one-hot rows are returned as they are)."""
    if t.ndim == 2:
        return t.astype(dtype)
    hot = np.zeros((len(t), classes), dtype=dtype)
    hot[np.arange(len(t)), t] = 1
    return hot


class Softmax:
    """y = softmax(x), row by row: y_i = exp(x_i) / sum_j exp(x_j).

    Each output depends on every input: dy_i/dx_j = y_i (delta_ij - y_j), the Jacobian diag(y) - y y^T.
    Backward multiplies the upstream gradient by that matrix, one (classes x classes) matrix per row,
    written out in full so that the rule can be read off the code."""

    def __init__(self):
        self.y = None

    def forward(self, x):
        self.y = softmax(x)
        return self.y

    def backward(self, dout):
        y = self.y
        jacobian = np.einsum("ni,ij->nij", y, np.eye(y.shape[1], dtype=y.dtype)) - np.einsum("ni,nj->nij", y, y)
        return np.einsum("nij,ni->nj", jacobian, dout)  # dL/dx_j = sum_i dL/dy_i dy_i/dx_j


class CrossEntropy:
    """L = -(1/N) sum over the batch of log y[label], for probabilities y.

    dL/dy = -t / (N y): only the true class's output receives a gradient, and it is large when that
    probability is small. The smallest positive number of the dtype is added to y, so that a probability
    that underflowed to 0 gives a large finite loss instead of log(0); it changes nothing else. (This is
    why the fused SoftmaxWithLoss is preferred in practice: it never divides by a probability.)"""

    def __init__(self):
        self.y = None
        self.t = None
        self.floor = 0.0

    def forward(self, y, t):
        self.y, self.t = y, one_hot(t, y.shape[1], y.dtype)
        self.floor = np.finfo(y.dtype).tiny
        return float(-np.sum(self.t * np.log(y + self.floor), dtype=np.float64) / len(y))

    def backward(self, dout=1.0):
        return -dout * self.t / ((self.y + self.floor) * len(self.y))


class MeanSquaredError:
    """L = (1 / 2N) sum over the batch and classes of (y - t)^2, against one-hot labels t.

    dL/dy = (y - t) / N (the 1/2 is there to cancel the square's 2)."""

    def __init__(self):
        self.y = None
        self.t = None

    def forward(self, y, t):
        self.y, self.t = y, one_hot(t, y.shape[1], y.dtype)
        return float(0.5 * np.sum((y - self.t) ** 2, dtype=np.float64) / len(y))

    def backward(self, dout=1.0):
        return dout * (self.y - self.t) / len(self.y)


class OutputThenLoss:
    """Two nodes in a row: an output node (x -> y), then a loss node (y, t -> L). Backward is the chain
    rule through both: dL/dx = output.backward(loss.backward(1))."""

    def __init__(self, output, loss):
        self.output, self.loss = output, loss
        self.y = None

    def forward(self, x, t):
        self.y = self.output.forward(x)
        return self.loss.forward(self.y, t)

    def backward(self, dout=1.0):
        return self.output.backward(self.loss.backward(dout))


class SoftmaxThenCrossEntropy(OutputThenLoss):
    """The fused SoftmaxWithLoss taken apart: a Softmax node, then a CrossEntropy node."""

    def __init__(self):
        super().__init__(Softmax(), CrossEntropy())

    @staticmethod
    def probabilities(x):
        return softmax(x)


class SigmoidWithMSE(OutputThenLoss):
    """Sigmoid outputs, then mean squared error: backward is delta = (y - t) * y * (1 - y) / N.

    The outputs do not sum to 1; `probabilities` divides each row by its sum, which keeps the argmax."""

    def __init__(self):
        super().__init__(Sigmoid(), MeanSquaredError())

    @staticmethod
    def probabilities(x):
        y = Sigmoid().forward(x)
        return y / y.sum(axis=1, keepdims=True)


class FusedSoftmaxCrossEntropy(SoftmaxWithLoss):
    """The default: layers.SoftmaxWithLoss, with softmax probabilities for `predict --proba`."""

    @staticmethod
    def probabilities(x):
        return softmax(x)


LOSSES = {
    "softmax_cross_entropy": FusedSoftmaxCrossEntropy,
    "softmax_then_cross_entropy": SoftmaxThenCrossEntropy,
    "mse": SigmoidWithMSE,
}
