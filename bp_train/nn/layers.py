"""Layers: backpropagation, one operation at a time.

A network is a computational graph. Going forward, each node computes its output from its inputs. Going
backward, each node receives dL/d(output) -- the "upstream gradient", called `dout` -- and passes on
dL/d(input) = dout * d(output)/d(input). That local rule, applied node by node from the loss back to the
inputs, is the chain rule, and it is all backpropagation is.

Every class below is one node with the same two methods:

    forward(x)      computes the output and caches exactly what backward will need;
    backward(dout)  returns the gradient for the input, and stores the gradients for its own
                    parameters beside them (`W` -> `dW`, `b` -> `db`).

No backward method changes the `dout` array it is given: upstream code may still hold it.

We start with the scalar gates of the textbook's shopping example (Saito, ch. 5; and the max and copy
nodes), then build up to the layers that make a digit recognizer: Affine, the activations, Dropout,
BatchNorm and SoftmaxWithLoss. Every class here is written as the textbook writes it, in NumPy alone;
fast_layers.py has the versions the training loop runs (the same numbers, checked equal to these).
"""

from __future__ import annotations

import numpy as np

# --- 1. Two gates: multiply and add ------------------------------------------------------------------------


class Mul:
    """z = x * y.  dz/dx = y and dz/dy = x: each input's gradient is dout times the *other* input."""

    def __init__(self):
        self.x = None
        self.y = None

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class Add:
    """z = x + y.  dz/dx = dz/dy = 1: an add gate passes dout on unchanged to both inputs."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout, dout


class Max:
    """z = max(x, y).  dz/dx = 1 where x is the larger, else 0 (and the other way round for y): a max gate
    routes dout to the larger input and gives the other nothing. Ties go to x."""

    def __init__(self):
        self.x_won = None

    def forward(self, x, y):
        self.x_won = np.asarray(x) >= np.asarray(y)
        return np.maximum(x, y)

    def backward(self, dout):
        return dout * self.x_won, dout * ~self.x_won


class Copy:
    """(z1, z2) = (x, x): one value used in two places, a branch of the graph. Going back, the two
    gradients that arrive are summed: dL/dx = dL/dz1 + dL/dz2, the multivariate chain rule."""

    def forward(self, x):
        return x, x

    def backward(self, dout1, dout2):
        return dout1 + dout2


# --- 2. Affine: the matrix product at the heart of a layer -------------------------------------------------


class Affine:
    """out = x . W + b, for a batch x of shape (N, ...) flattened to (N, D).

    dL/dx = dout . W^T     (reshaped back to x's shape: an image batch (N, 1, 28, 28) gets one back)
    dL/dW = x^T . dout     (each weight's gradient sums over the batch)
    dL/db = sum of dout over the batch
    """

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = None
        self.x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        dx = dout @ self.W.T
        return dx.reshape(self.x_shape)


# --- 3. Activations ------------------------------------------------------------------------------------


class ReLU:
    """out = max(0, x).  d(out)/dx = 1 where x > 0, else 0: the gradient flows only through active units."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask


class Sigmoid:
    """out = 1 / (1 + exp(-x)).  d(out)/dx = out * (1 - out), so backward needs only the output.

    Computed as (1 + tanh(x/2)) / 2, which is the same function but never overflows for large |x|.
    """

    def __init__(self):
        self.out = None

    def forward(self, x):
        out = np.tanh(0.5 * x)
        out += 1
        out *= 0.5
        self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Tanh:
    """out = tanh(x).  d(out)/dx = 1 - out^2."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out * self.out)


# --- 4. Regularization and normalization ---------------------------------------------------------------


class Dropout:
    """Inverted dropout: in training, out = x * mask, where mask is 1 / (1 - ratio) for a kept unit (each
    kept with probability 1 - ratio) and 0 for a dropped one.

    d(out)/dx = mask: the same mask multiplies the gradient, so a dropped unit passes nothing back.
    Scaling at training time keeps the expected activation unchanged, so evaluation is simply the
    identity. `train` is set by the network (on in fit, off in evaluate and predict).
    """

    def __init__(self, ratio, rng):
        self.ratio = ratio
        self.rng = rng  # a numpy.random.Generator: the masks come from a seed, so a run can be repeated
        self.train = True
        self.mask = None

    def forward(self, x):
        if not self.train or self.ratio == 0.0:
            self.mask = None
            return x
        self.mask = self.draw_mask(x)
        return x * self.mask

    def draw_mask(self, x):
        keep = self.rng.random(x.shape) >= self.ratio
        return keep.astype(x.dtype) / (1.0 - self.ratio)

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


class BatchNorm:
    """Normalize each feature over the batch, then scale and shift (Ioffe and Szegedy, 2015):

        mu = mean(x),  xc = x - mu,  var = mean(xc^2),  std = sqrt(var + eps),  xn = xc / std
        out = gamma * xn + beta

    In training the batch's own mean and variance are used, and running averages of them are kept for
    evaluation, where the layer is a fixed scale and shift. Backward walks the same graph in reverse,
    one node at a time (Saito, ch. 6; the mean and the variance depend on every x, hence the sums):

        dbeta  = sum(dout),  dgamma = sum(dout * xn),  dxn = dout * gamma
        dxc    = dxn / std                          (through xn = xc / std, by xc)
        dstd   = -sum(dxn * xc / std^2)             (through xn = xc / std, by std)
        dvar   = 0.5 * dstd / std                   (std = sqrt(var + eps))
        dxc   += (2 / N) * xc * dvar                (var = mean(xc^2): xc is used twice)
        dmu    = sum(dxc)
        dx     = dxc - dmu / N                      (xc = x - mu, and mu = mean(x))

    every sum over the batch (axis 0). `running_mean` and `running_var` are arrays the layer updates in
    place (the network keeps them, to save them with the model). In evaluation they are constants, and
    backward is that of a fixed scale: dx = dout * gamma / sqrt(running_var + eps), dbeta and dgamma as above.
    """

    def __init__(self, gamma, beta, running_mean, running_var, momentum=0.9, eps=1e-5):
        self.gamma, self.beta = gamma, beta
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps = momentum, eps
        self.train = True
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x):
        if not self.train:
            self.xn = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
            return self.gamma * self.xn + self.beta
        mu = x.mean(axis=0)
        xc = x - mu
        var = np.mean(xc**2, axis=0)
        std = np.sqrt(var + self.eps)
        xn = xc / std
        self.running_mean *= self.momentum
        self.running_mean += (1 - self.momentum) * mu
        self.running_var *= self.momentum
        self.running_var += (1 - self.momentum) * var
        self.xc, self.xn, self.std = xc, xn, std
        return self.gamma * xn + self.beta

    def backward(self, dout):
        n = dout.shape[0]
        self.dbeta = np.sum(dout, axis=0)
        self.dgamma = np.sum(dout * self.xn, axis=0)
        dxn = dout * self.gamma
        if not self.train:  # evaluation: the running averages are constants
            return dxn / np.sqrt(self.running_var + self.eps)
        dxc = dxn / self.std
        dstd = -np.sum(dxn * self.xc / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / n) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        return dxc - dmu / n


# --- 5. The output: softmax and cross-entropy in one node -----------------------------------------------


class SoftmaxWithLoss:
    """y = softmax(x), loss = mean over the batch of -log y[label].

    Taken together, the two have the simplest of gradients: dL/dx = (y - t) / N, with t the one-hot label.
    Softmax is computed after subtracting each row's maximum, and the loss from the log-softmax
    x - max - log(sum(exp(x - max))), so that no exp overflows and no log sees zero.
    Labels may be integers (shape (N,)) or one-hot rows (shape (N, classes)).
    """

    def __init__(self):
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t.argmax(axis=1) if t.ndim == 2 else t
        shifted = x - x.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self.y = exp / total  # softmax(x)
        log_y = shifted - np.log(total)  # log softmax(x), without taking the log of a y that underflowed
        return -float(np.mean(log_y[np.arange(len(x)), self.t]))  # each row's log y at its label

    def backward(self, dout=1.0):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[np.arange(n), self.t] -= 1  # y - t: subtract the one-hot label
        return dx * dout / n


def softmax(x):
    """Row-wise softmax of scores, stable for any magnitude (used for --proba)."""
    shifted = x - x.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
