"""One training step on two cores without two-thread BLAS: the batch cut in two halves, each run through
the network on a Python thread of its own with BLAS at one thread.

Why. Only a network's matrix products use a second BLAS thread; im2col's copies, the pooling, the
activations, BatchNorm and col2im's sums run on one core. Measured on this 2-core machine (fast-cnn.yaml,
batch 100): 42 ms a step with two BLAS threads, 58 ms with one; the halves at one BLAS thread each, side
by side (NumPy lets go of the GIL in its loops and products), do the whole step on both cores.

What stays the same. The function is the network's own, on the whole batch: each half runs the network's
layers (copies that share the weights, with gradient buffers of their own), forward then backward, and
the two meet, at a barrier, wherever the batch is one thing:
  * BatchNorm's mean and variance are those of the whole batch: each half sums its rows, the sums are
    added, then each half normalizes; going back, dgamma and dbeta are summed over both halves first.
  * Dropout's mask is drawn for the whole batch, from the network's own generator, exactly as one
    full-batch pass draws it, and cut in two: the same masks, so the same random stream and exact resume.
  * The loss is the mean over the whole batch: each half's gradient is scaled by its share of the rows.
  * Each parameter's gradient is the sum of the two halves' (a sum over rows, as the product was).
Only the order of some float sums differs from the one-thread-per-batch pass: the same to float32
rounding, and the same run to run (the halves meet in a fixed order). tests/test_split.py checks it
against Network.gradient in float64.
"""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..nn.conv import Flatten, Pooling, ToImage
from ..nn.fast_layers import (
    DeviceDropout,
    DeviceSoftmaxWithLoss,
    FastAffine,
    FastBatchNorm,
    FastConvolution,
    column_sums,
)
from ..nn.layers import ReLU, Sigmoid, Tanh

SPLITTABLE = (ToImage, Flatten, Pooling, ReLU, Sigmoid, Tanh, FastAffine, FastConvolution, FastBatchNorm, DeviceDropout)
GRADIENT_BUFFERS = ("dW", "db", "dgamma", "dbeta")


def splittable(network) -> bool:
    """A network of layers this file knows, on the CPU, with the softmax cross-entropy head."""
    return (
        network.xp is np
        and type(network.last_layer) is DeviceSoftmaxWithLoss
        and all(isinstance(layer, SPLITTABLE) for layer in network.layers.values())
    )


def half_copy(layer):
    """The layer for one half: the same weights (the very arrays), gradient buffers and caches of its own."""
    half = copy.copy(layer)
    for method in ("forward", "backward"):  # an instance's own wrapper (bench's timer) calls the original
        half.__dict__.pop(method, None)
    for name in GRADIENT_BUFFERS:
        if getattr(half, name, None) is not None:
            setattr(half, name, np.zeros_like(getattr(layer, name)))
    if isinstance(half, FastConvolution):
        half.col = half.padded = None  # im2col's buffers: one set per half
    return half


class SplitNetwork:
    """`gradient(x, t)` as Network.gradient computes it, over two halves on two threads (see above).
    Each half runs every layer, forward then backward, in one task of its own; the halves wait for each
    other only where the batch is one thing (BatchNorm, a dropout mask), at a barrier. Also sets
    network.last_loss and network.last_layer.y (the whole batch's probabilities), which the training loop
    reads."""

    def __init__(self, network):
        self.network = network
        self.names = list(network.layers)
        self.layers = list(network.layers.values())
        self.halves = [[half_copy(layer) for layer in self.layers] for _ in range(2)]
        self.heads = [DeviceSoftmaxWithLoss(), DeviceSoftmaxWithLoss()]
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="batch-half")
        self.barrier = threading.Barrier(2)
        self.shared = [None, None]  # what each half hands the other at a barrier
        self.xhat = [{}, {}]  # per half: BatchNorm layer index -> its normalized input, for backward
        self.std = [{}, {}]  # and the whole batch's standard deviations (the same numbers in both)

    def close(self) -> None:
        self.pool.shutdown()

    def exchange(self, h: int, mine):
        """Hand `mine` to the other half and take its: (half 0's, half 1's), the same on both sides."""
        self.shared[h] = mine
        self.barrier.wait()
        both = tuple(self.shared)
        self.barrier.wait()  # both have read before either writes again
        return both

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict:
        network = self.network
        if len(x) < 2:  # nothing to share out: the whole network on the one row
            return network.gradient(x, t)
        network.set_flag("train", True)
        for half in self.halves:
            for layer in half:
                if hasattr(layer, "train"):
                    layer.train = True
        cut = (len(x) + 1) // 2
        x = np.asarray(x).astype(network.dtype, copy=False)
        work = [(0, x[:cut], t[:cut], len(x)), (1, x[cut:], t[cut:], len(x))]
        self.barrier.reset()
        futures = [self.pool.submit(self.run_half, *args) for args in work]
        errors = [future.exception() for future in futures]
        real = [e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)]
        if real or any(errors):
            raise (real or errors)[0]
        losses = [future.result() for future in futures]
        self.gather()
        rows = [cut, len(x) - cut]
        network.last_loss = (rows[0] * losses[0] + rows[1] * losses[1]) / len(x) + network.penalty()
        network.last_layer.y = np.concatenate([head.y for head in self.heads])
        return dict(network.grads)

    def run_half(self, h: int, x: np.ndarray, t: np.ndarray, batch: int) -> float:
        try:
            out = x
            for i, layer in enumerate(self.layers):
                out = self.forward_layer(h, i, layer, out, batch)
            loss = self.heads[h].forward(out, t)
            dout = self.heads[h].backward(len(t) / batch)  # this half's share of the whole batch's mean
            for i in reversed(range(len(self.layers))):
                dout = self.backward_layer(h, i, self.layers[i], dout)
                if dout is None:
                    break
            return loss
        except BaseException:
            self.barrier.abort()  # the other half must not wait for this one
            raise

    def forward_layer(self, h: int, i: int, layer, x, batch: int):
        if isinstance(layer, FastBatchNorm):
            return self.batchnorm_forward(h, i, layer, x, batch)
        if isinstance(layer, DeviceDropout) and layer.ratio > 0:
            if h == 0:  # the whole batch's mask, from the network's own generator, drawn once
                layer.mask = layer.draw_mask(np.empty_like(x, shape=(batch, *x.shape[1:])))
            mask, _ = self.exchange(h, layer.mask if h == 0 else None)
            self.halves[h][i].mask = part = mask[: len(x)] if h == 0 else mask[batch - len(x) :]
            return x * part
        return self.halves[h][i].forward(x)

    def backward_layer(self, h: int, i: int, layer, dout):
        if isinstance(layer, FastBatchNorm):
            return self.batchnorm_backward(h, i, layer, dout)
        return self.halves[h][i].backward(dout)

    def batchnorm_forward(self, h: int, i: int, layer, x, batch: int):
        """The whole batch's mean and variance from the halves' sums (added in one order on both sides,
        so both get the same numbers); then each half normalizes its rows."""
        flat = x.reshape(-1, x.shape[-1])
        sums = self.exchange(h, (column_sums(flat), flat.shape[0]))
        count = sums[0][1] + sums[1][1]
        mean = (sums[0][0] + sums[1][0]) / count
        centred = flat - mean
        squares = self.exchange(h, np.einsum("ij,ij->j", centred, centred))
        var = (squares[0] + squares[1]) / count
        std = self.std[h][i] = np.sqrt(var + layer.eps)
        if h == 0:
            layer.std = std
            if not layer.frozen:
                layer.running_mean *= layer.momentum
                layer.running_mean += (1 - layer.momentum) * mean
                layer.running_var *= layer.momentum
                layer.running_var += (1 - layer.momentum) * var
        centred /= std
        self.xhat[h][i] = centred
        out = centred * layer.gamma
        out += layer.beta
        return out.reshape(x.shape)

    def batchnorm_backward(self, h: int, i: int, layer, dout):
        flat = dout.reshape(-1, dout.shape[-1])
        xhat = self.xhat[h][i]
        sums = self.exchange(h, (np.einsum("ij,ij->j", flat, xhat), column_sums(flat), flat.shape[0]))
        dgamma, dbeta, count = sums[0][0] + sums[1][0], sums[0][1] + sums[1][1], sums[0][2] + sums[1][2]
        if h == 0:
            layer.dgamma[...] = dgamma
            layer.dbeta[...] = dbeta
        dx = xhat * (-dgamma / count)
        dx += flat
        dx -= dbeta / count
        dx *= layer.gamma / self.std[h][i]
        return dx.reshape(dout.shape)

    def gather(self) -> None:
        """Each parameter's gradient: the sum of the halves' (BatchNorm's were summed as they were made)."""
        network = self.network
        for i, name in enumerate(self.names):
            if name not in network.keys or isinstance(self.layers[i], FastBatchNorm):
                continue
            for param, key in network.keys[name].items():
                np.add(
                    getattr(self.halves[0][i], "d" + param),
                    getattr(self.halves[1][i], "d" + param),
                    out=network.grads[key],
                )
        network.add_decay_gradients()
