"""Layers: backpropagation, one operation at a time.

A network is a computational graph. Going forward, each node computes its output from its inputs. Going
backward, each node receives dL/d(output) -- the "upstream gradient", called `dout` -- and passes on
dL/d(input) = dout * d(output)/d(input). That local rule, applied node by node from the loss back to the
inputs, is the chain rule, and it is all backpropagation is.

Every class below is one node with the same two methods:

    forward(x)      computes the output and caches exactly what backward will need;
    backward(dout)  returns the gradient for the input, and stores the gradients for its own
                    parameters beside them (`W` -> `dW`, `b` -> `db`).

No backward method changes the `dout` array it is given: upstream code may still hold it. A layer with
parameters also says what they are: `params()` and `grads()` map names to arrays ({"W": W, "b": b} and
{"W": dW, "b": db}), and backward writes into those very gradient arrays.

We start with the scalar gates of the textbook's shopping example (and the max and copy nodes), then build up to the layers that
make a digit recognizer: Affine, the activations, Dropout, BatchNorm and SoftmaxWithLoss.
"""

from __future__ import annotations

import numpy as np

from .backend import arange_like, like  # host arrays and indices where the input lives: see backend.py

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

    dL/dx = dout . W^T     (reshaped back to x's shape)
    dL/dW = x^T . dout     (each weight's gradient sums over the batch)
    dL/db = sum of dout over the batch

    `need_dx=False` skips dL/dx, for the first layer, whose input is the data and needs no gradient:
    that saves a third of the layer's backward work. `b=None` makes a layer without bias (used before
    BatchNorm, whose beta plays that role).
    """

    def __init__(self, W, b, need_dx=True):
        self.W, self.b = W, b
        self.need_dx = need_dx
        self.x = None
        self.x_shape = None
        self.dW = np.zeros_like(W)
        self.db = None if b is None else np.zeros_like(b)

    def params(self):
        """The parameters by name, what an optimizer changes: {"W": W, "b": b} (no "b" without a bias)."""
        return {"W": self.W} if self.b is None else {"W": self.W, "b": self.b}

    def grads(self):
        """The gradients by the same names, written by backward: {"W": dL/dW, "b": dL/db}."""
        return {"W": self.dW} if self.b is None else {"W": self.dW, "b": self.db}

    def bind(self, params, grads):
        """Use these arrays (of the same shapes) as the parameters and gradients from now on: the network
        hands each layer views of its two long vectors (vectors.py)."""
        self.W, self.dW = params["W"], grads["W"]
        if self.b is not None:
            self.b, self.db = params["b"], grads["b"]

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        out = self.x @ self.W
        if self.b is not None:
            out += self.b  # in place: `out` is a fresh array, so no copy is needed for the bias
        return out

    def backward(self, dout):
        np.matmul(self.x.T, dout, out=self.dW)
        if self.b is not None:
            np.sum(dout, axis=0, out=self.db)
        if not self.need_dx:
            return None
        return (dout @ self.W.T).reshape(self.x_shape)


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
    """Inverted dropout: in training, out = x * mask / (1 - p) with mask ~ Bernoulli(1 - p).

    d(out)/dx = mask / (1 - p): the same scaled mask multiplies the gradient. Scaling at training time
    keeps the expected activation unchanged, so evaluation is simply the identity.

    `train` is set by the network (on in fit, off in evaluate and predict). `frozen` reuses the last mask,
    so that a gradient check sees one fixed function instead of a new random one per evaluation.
    """

    def __init__(self, ratio, rng):
        self.ratio = ratio
        self.rng = rng
        self.train = True
        self.frozen = False
        self.scaled_mask = None

    def forward(self, x):
        if not self.train or self.ratio == 0.0:
            self.scaled_mask = None
            return x
        if not (self.frozen and self.scaled_mask is not None and self.scaled_mask.shape == x.shape):
            keep = like(x, self.rng.random(x.shape, dtype=np.float32) >= self.ratio)  # drawn on the host
            self.scaled_mask = keep.astype(x.dtype)
            self.scaled_mask *= 1.0 / (1.0 - self.ratio)
        return x * self.scaled_mask

    def backward(self, dout):
        return dout if self.scaled_mask is None else dout * self.scaled_mask


class BatchNorm:
    """Normalize each feature over the batch, then scale and shift: out = gamma * xhat + beta.

    In training, xhat = (x - mean) / std with the batch's own mean and std, and the running averages used
    in evaluation are updated. Backward differentiates through mean and std too; written compactly,
        dgamma = sum(dout * xhat),  dbeta = sum(dout),
        dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / std,  where dxhat = dout * gamma.
    `frozen` keeps the running averages unchanged (used while gradients are checked numerically). In
    evaluation mode the layer is a fixed scale and shift, and backward is that scale (for saliency maps).
    """

    def __init__(self, gamma, beta, running_mean, running_var, momentum=0.9, eps=1e-5):
        self.gamma, self.beta = gamma, beta
        self.running_mean, self.running_var = running_mean, running_var
        self.momentum, self.eps = momentum, eps
        self.train = True
        self.frozen = False
        self.xhat = None
        self.std = None
        self.dgamma = np.zeros_like(gamma)
        self.dbeta = np.zeros_like(beta)

    def params(self):
        """The learned scale and shift; the running averages are not parameters (no gradient moves them)."""
        return {"gamma": self.gamma, "beta": self.beta}

    def grads(self):
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def bind(self, params, grads):
        """As Affine.bind: views of the network's vectors from now on."""
        self.gamma, self.beta = params["gamma"], params["beta"]
        self.dgamma, self.dbeta = grads["gamma"], grads["beta"]

    def forward(self, x):
        if not self.train:
            return (x - self.running_mean) / np.sqrt(self.running_var + self.eps) * self.gamma + self.beta
        mean = x.mean(axis=0)
        xhat = x - mean
        var = np.einsum("ij,ij->j", xhat, xhat) / len(x)  # the sum of squares per feature, with no temporary
        if not self.frozen:
            self.running_mean *= self.momentum
            self.running_mean += (1 - self.momentum) * mean
            self.running_var *= self.momentum
            self.running_var += (1 - self.momentum) * var
        self.std = np.sqrt(var + self.eps)
        xhat /= self.std
        self.xhat = xhat
        out = xhat * self.gamma
        out += self.beta
        return out

    def backward(self, dout):
        if not self.train:  # evaluation: a fixed scale per feature, gamma / sqrt(running_var + eps)
            return dout * (self.gamma / np.sqrt(self.running_var + self.eps))
        n = len(dout)
        self.dgamma[...] = np.einsum("ij,ij->j", dout, self.xhat)  # (CuPy's einsum has no out=)
        np.sum(dout, axis=0, out=self.dbeta)
        # The formula above with mean(dxhat) = gamma * dbeta / N and mean(dxhat * xhat) = gamma * dgamma / N:
        # dx = gamma / std * (dout - dbeta / N - xhat * dgamma / N), in three passes and one new array.
        dx = self.xhat * (-self.dgamma / n)
        dx += dout
        dx -= self.dbeta / n
        dx *= self.gamma / self.std
        return dx


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
        shifted = x - x.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self.y = exp / total
        self.t = t.argmax(axis=1) if t.ndim == 2 else t
        rows = arange_like(x, len(x))  # 0..N-1 where x lives: shifted[rows, t] is each row's true class
        log_likelihood = shifted[rows, self.t] - np.log(total[:, 0])
        return -float(log_likelihood.mean(dtype=np.float64))  # negated on the host: no kernel for it

    def backward(self, dout=1.0):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[arange_like(dx, n), self.t] -= 1  # y - t: subtract the one-hot label
        dx *= dout / n
        return dx


def softmax(x):
    """Row-wise softmax of scores, stable for any magnitude (used for --proba)."""
    shifted = x - x.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
