"""The layers the training loop runs: layers.py's and conv.py's, made fast and device-aware.

Read this last. Every class here is a subclass of the lesson's class of the same name and computes the
same numbers (tests/test_fast_layers.py checks each against it, forward and backward, on the same
weights: float64 to 1e-10). What they add is what a training step needs and a student does not:

  * gradients written into arrays the network hands each layer (`bind`): views of one long gradient
    vector, so that an optimizer steps over all parameters at once (vectors.py) with nothing copied;
  * the first layer skips dL/dx (`need_dx=False`): its input is the data, which needs no gradient, and
    the product costs a third of the layer's backward;
  * no bias before BatchNorm (`b=None`): BatchNorm subtracts the batch mean, so such a bias gets a
    gradient of exactly 0, and beta plays its role;
  * in-place operations and reused buffers (`out=`), which save allocating arrays the size of a batch;
  * BatchNorm's backward fused into three passes; a convolution's dL/dx one filter position at a time;
  * arrays made where the input lives, so that the same code runs on NumPy and on CuPy (backend.py);
  * `frozen`: Dropout reuses its last mask and BatchNorm leaves its running averages alone, so that a
    numerical gradient sees one fixed function.
"""

from __future__ import annotations

import numpy as np

from .backend import arange_like, constant_like, like, module_of
from .conv import Convolution, SpatialBatchNorm, col2im_product, im2col, output_size
from .layers import Affine, BatchNorm, Dropout, Sigmoid
from .losses import (
    CrossEntropy,
    FusedSoftmaxCrossEntropy,
    MeanSquaredError,
    OutputThenLoss,
    SigmoidWithMSE,
    Softmax,
    SoftmaxThenCrossEntropy,
)


def column_sums(a, out=None):
    """The sum down each column of a (rows, features) matrix as ones . a: one BLAS pass, measured 5-15x
    faster here than np.sum(a, axis=0) on a convolution's (N*H*W, C) gradients."""
    return np.matmul(constant_like(a, np.ones, a.shape[0], a.dtype), a, out=out)


class WithParameters:
    """What the network needs to know of a layer with parameters: their names, and where to write."""

    names = ("W", "b")

    def params(self):
        """{"W": W, "b": b}: the arrays an optimizer moves (no "b" without a bias)."""
        return {name: getattr(self, name) for name in self.names if getattr(self, name) is not None}

    def grads(self):
        """The gradients by the same names: {"W": dW, "b": db}."""
        return {name: getattr(self, "d" + name) for name in self.params()}

    def bind(self, params, grads):
        """Use these arrays (of the same shapes) as the parameters and gradients from now on: the network
        hands each layer views of its two long vectors (vectors.py)."""
        for name in params:
            setattr(self, name, params[name])
            setattr(self, "d" + name, grads[name])


class FastAffine(WithParameters, Affine):
    def __init__(self, W, b, need_dx=True):
        super().__init__(W, b)
        self.need_dx = need_dx
        self.dW = np.zeros_like(W)
        self.db = None if b is None else np.zeros_like(b)

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        out = self.x @ self.W
        if self.b is not None:
            out += self.b  # in place: `out` is a fresh array
        return out

    def backward(self, dout):
        np.matmul(self.x.T, dout, out=self.dW)
        if self.b is not None:
            np.sum(dout, axis=0, out=self.db)
        if not self.need_dx:
            return None
        return (dout @ self.W.T).reshape(self.x_shape)


class FastConvolution(WithParameters, Convolution):
    """Convolution with the patch matrix and the zero-bordered input kept as buffers between batches of one
    size, dL/db as a product, and dL/dx computed one filter position at a time (col2im_product: never the
    whole dout . W^T matrix, 2x faster here)."""

    def __init__(self, W, b, stride=1, pad=0, need_dx=True):
        super().__init__(W, b, stride, pad)
        self.need_dx = need_dx
        self.dW = np.zeros_like(W)
        self.db = None if b is None else np.zeros_like(b)
        self.padded = None  # the input inside its zero border; the border is written once

    def forward(self, x):
        kh, kw, c, fn = self.W.shape
        n = x.shape[0]
        oh, ow = output_size(x.shape[1], kh, self.stride, self.pad), output_size(x.shape[2], kw, self.stride, self.pad)
        self.x_shape = x.shape
        self.col = self.patches(x, (n, oh, ow, kh, kw, c)).reshape(n * oh * ow, -1)
        out = self.col @ self.W.reshape(-1, fn)
        if self.b is not None:
            out += self.b
        return out.reshape(n, oh, ow, fn)

    def patches(self, x, shape):
        """im2col(x) written into the reused patch buffer. With one input channel (the first layer) a
        patch row is a handful of numbers, and on the CPU one slice copy per filter position fills it 3x
        faster than im2col's copy of the window view (measured on 50 digits: 0.20 against 0.67 ms); on a
        GPU each copy is a kernel launch, and im2col's one copy is the cheaper."""
        reusable = self.col is not None and self.col.size == np.prod(shape) and self.col.dtype == x.dtype
        col = self.col.reshape(shape) if reusable else np.empty_like(x, shape=shape)
        if x.shape[3] != 1 or module_of(x) is not np:
            return im2col(x, *shape[3:5], self.stride, self.pad, out=col)
        p, s = self.pad, self.stride
        if p:
            n, h, w, c = x.shape
            if self.padded is None or self.padded.shape != (n, h + 2 * p, w + 2 * p, c) or self.padded.dtype != x.dtype:
                self.padded = np.zeros_like(x, shape=(n, h + 2 * p, w + 2 * p, c))
            self.padded[:, p : p + h, p : p + w, :] = x
            x = self.padded
        oh, ow = shape[1:3]
        for i in range(shape[3]):
            for j in range(shape[4]):
                col[:, :, :, i, j, :] = x[:, i : i + s * oh : s, j : j + s * ow : s, :]
        return col

    def backward(self, dout):
        fn = self.W.shape[3]
        dout = dout.reshape(-1, fn)
        np.matmul(self.col.T, dout, out=self.dW.reshape(-1, fn))
        if self.b is not None:
            column_sums(dout, out=self.db)  # the sum over every position of every image
        if not self.need_dx:
            return None
        return col2im_product(dout, self.W, self.x_shape, self.stride, self.pad)


class FastBatchNorm(WithParameters, BatchNorm):
    """BatchNorm with backward's nine nodes collapsed into three passes:

        dx = gamma / std * (dout - dbeta / N - xhat * dgamma / N)

    (the lesson's dxc, dstd, dvar and dmu, substituted into one another). In evaluation mode backward is
    the fixed scale gamma / sqrt(running_var + eps), for saliency maps."""

    names = ("gamma", "beta")

    def __init__(self, gamma, beta, running_mean, running_var, momentum=0.9, eps=1e-5):
        super().__init__(gamma, beta, running_mean, running_var, momentum, eps)
        self.frozen = False
        self.xhat = None
        self.dgamma = np.zeros_like(gamma)
        self.dbeta = np.zeros_like(beta)

    def forward(self, x):
        if not self.train:
            return BatchNorm.forward(self, x)  # evaluation: the lesson's fixed scale and shift
        mean = column_sums(x) / len(x)
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
        if not self.train:
            self.dgamma[...] = np.sum(dout * self.xn, axis=0)
            self.dbeta[...] = np.sum(dout, axis=0)
            return dout * (self.gamma / np.sqrt(self.running_var + self.eps))
        n = len(dout)
        self.dgamma[...] = np.einsum("ij,ij->j", dout, self.xhat)  # (CuPy's einsum has no out=)
        column_sums(dout, out=self.dbeta)
        dx = self.xhat * (-self.dgamma / n)
        dx += dout
        dx -= self.dbeta / n
        dx *= self.gamma / self.std
        return dx


class FastSpatialBatchNorm(FastBatchNorm, SpatialBatchNorm):
    """FastBatchNorm over channels: (N, H, W, C) maps are N*H*W samples of C features (conv.SpatialBatchNorm)."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    def backward(self, dout):
        return super().backward(dout.reshape(-1, dout.shape[-1])).reshape(dout.shape)


class DeviceDropout(Dropout):
    """Dropout whose mask is drawn on the host (float32 draws, the same on every device) and moved to the
    input's device; `frozen` reuses the last mask."""

    def __init__(self, ratio, rng):
        super().__init__(ratio, rng)
        self.frozen = False

    def draw_mask(self, x):
        if self.frozen and self.mask is not None and self.mask.shape == x.shape:
            return self.mask
        keep = like(x, self.rng.random(x.shape, dtype=np.float32) >= self.ratio)
        mask = keep.astype(x.dtype)
        mask *= 1.0 / (1.0 - self.ratio)
        return mask


# --- the loss heads, on any device -------------------------------------------------------------------------


class DeviceSoftmaxWithLoss(FusedSoftmaxCrossEntropy):
    """The fused head, with its row index made where the scores live and the mean taken in float64."""

    def forward(self, x, t):
        shifted = x - x.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        self.y = exp / total
        self.t = t.argmax(axis=1) if t.ndim == 2 else t
        rows = arange_like(x, len(x))
        log_likelihood = shifted[rows, self.t] - np.log(total[:, 0])
        return -float(log_likelihood.mean(dtype=np.float64))

    def backward(self, dout=1.0):
        n = self.y.shape[0]
        dx = self.y.copy()
        dx[arange_like(dx, n), self.t] -= 1
        dx *= dout / n
        return dx


def device_one_hot(t, classes: int, dtype):
    if t.ndim == 2:
        return t.astype(dtype)
    hot = np.zeros_like(t, shape=(len(t), classes), dtype=dtype)  # made where t lives
    hot[arange_like(t, len(t)), t] = 1
    return hot


class DeviceSoftmax(Softmax):
    def backward(self, dout):
        y = self.y
        eye = like(y, np.eye(y.shape[1], dtype=y.dtype))
        jacobian = np.einsum("ni,ij->nij", y, eye) - np.einsum("ni,nj->nij", y, y)
        return np.einsum("nij,ni->nj", jacobian, dout)


class DeviceCrossEntropy(CrossEntropy):
    def forward(self, y, t):
        self.y, self.t = y, device_one_hot(t, y.shape[1], y.dtype)
        self.floor = np.finfo(y.dtype).tiny
        return float(-np.sum(self.t * np.log(y + self.floor), dtype=np.float64) / len(y))


class DeviceMeanSquaredError(MeanSquaredError):
    def forward(self, y, t):
        self.y, self.t = y, device_one_hot(t, y.shape[1], y.dtype)
        return float(0.5 * np.sum((y - self.t) ** 2, dtype=np.float64) / len(y))


class DeviceSoftmaxThenCrossEntropy(SoftmaxThenCrossEntropy):
    def __init__(self):
        OutputThenLoss.__init__(self, DeviceSoftmax(), DeviceCrossEntropy())


class DeviceSigmoidWithMSE(SigmoidWithMSE):
    def __init__(self):
        OutputThenLoss.__init__(self, Sigmoid(), DeviceMeanSquaredError())


DEVICE_LOSSES = {
    "softmax_cross_entropy": DeviceSoftmaxWithLoss,
    "softmax_then_cross_entropy": DeviceSoftmaxThenCrossEntropy,
    "mse": DeviceSigmoidWithMSE,
}
