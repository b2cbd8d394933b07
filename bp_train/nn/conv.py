"""Convolutional layers: Convolution, max Pooling, spatial BatchNorm, and the two reshapes around them.

Read `layers.py` first: these are nodes of the same graph, with the same two methods. A convolution
slides a small filter over the image and, at every position, takes the dot product of the filter with
the patch under it. Written as loops that is six nested loops; written as one matrix product it is fast,
and the trick that turns it into one is im2col.

Layout. Images are kept as (N, H, W, C): batch, height, width, channels ("NHWC"). The textbook uses
(N, C, H, W). NHWC won here for two reasons: the product of im2col's rows with the filters gives
(N * OH * OW, FN), which *is* the next layer's (N, OH, OW, FN) input, where NCHW needs a transposing copy
back; and its patches copy in long runs of channels. Measured on batches of 100 (one thread), the two
im2cols of configs/cnn.yaml took 5.0 ms in NHWC against 18.7 ms for the textbook's NCHW im2col, plus
3.6 ms for NCHW's transposes. Pooling and BatchNorm over channels become plain reshapes. The config
still speaks of `input_shape: [C, H, W]`, as the textbooks do.

im2col. For every output position (n, i, j), copy the FH x FW x C patch it sees into one row:

    image (H x W, one channel)       col: one row per output position, FH*FW*C columns
    +---+---+---+---+
    | a | b | c | d |                 row (0,0): a b e f      <- the 2x2 patch at the top left
    +---+---+---+---+                 row (0,1): b c f g
    | e | f | g | h |     2x2         row (0,2): c d g h
    +---+---+---+---+    filter,      row (1,0): e f i j
    | i | j | k | l |    stride 1     ...
    +---+---+---+---+

Then out = col . W + b, with W reshaped to (FH*FW*C, FN): every filter against every patch in one BLAS
call. No Python loop runs over images or pixels: NumPy's sliding_window_view shows all patches at once.

col2im is the way back: backward's dcol = dout . W^T holds one gradient per patch entry, and every input
pixel receives the sum of the gradients of all the patch entries it was copied into -- the copy node of
the computational graph sums its branches. It loops over the FH*FW positions inside the filter (9 for
3x3), each adding one shifted, strided view of the whole batch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layers import BatchNorm


def output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Positions a kernel takes along one side: (size + 2 pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int, out: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W, C) images -> (N, OH, OW, KH, KW, C) patches (reshape to (N*OH*OW, KH*KW*C) for the product).

    `sliding_window_view` shows every patch of the padded batch without copying a number; the one copy
    into `out` (a buffer reused across batches, or a new array) lays the patches out as rows. Copying in
    the destination's order measured 4x faster here than a loop of KH*KW shifted slices."""
    n, h, w, c = x.shape
    oh, ow = output_size(h, kh, stride, pad), output_size(w, kw, stride, pad)
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    patches = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # (N, OH, OW, C, KH, KW)
    if out is None:
        out = np.empty_like(x, shape=(n, oh, ow, kh, kw, c))  # *_like(x, shape=): made where x lives (backend.py)
    np.copyto(out, patches.transpose(0, 1, 2, 4, 5, 3))
    return out


def col2im_product(dout: np.ndarray, W: np.ndarray, x_shape: tuple, stride: int, pad: int) -> np.ndarray:
    """dL/dx of a convolution: col2im(dout . W^T), computed one filter position at a time.

    dout . W[p, q]^T is the gradient of every patch entry taken from filter position (p, q); each lands
    on the input pixel it was copied from, a shifted, strided view of dx, and `+=` sums what overlaps.
    Never building the whole (N*OH*OW, KH*KW*C) gradient matrix measured 2x faster here."""
    n, h, w, c = x_shape
    kh, kw = W.shape[:2]
    oh, ow = output_size(h, kh, stride, pad), output_size(w, kw, stride, pad)
    dout = dout.reshape(-1, W.shape[3])
    dx = np.zeros_like(dout, shape=(n, h + 2 * pad, w + 2 * pad, c))
    patch_grad = np.empty_like(dout, shape=(dout.shape[0], c))
    for p in range(kh):
        for q in range(kw):
            np.matmul(dout, W[p, q].T, out=patch_grad)
            # += on a named view adds in place; `dx[...] += g` would also assign the sum back into dx,
            # a second pass over the slice (a second kernel on a GPU)
            inputs_seen = dx[:, p : p + stride * oh : stride, q : q + stride * ow : stride, :]
            inputs_seen += patch_grad.reshape(n, oh, ow, c)
    return dx[:, pad : pad + h, pad : pad + w, :] if pad else dx


class Convolution:
    """out[n, i, j, f] = sum over (p, q, c) of x_padded[n, i*s + p, j*s + q, c] * W[p, q, c, f] + b[f].

    W has shape (FH, FW, C, FN): FN filters of FH x FW x C. With col = im2col(x) as a matrix and W as
    (FH*FW*C, FN), this is the Affine layer's product, so its gradients are the Affine layer's too:
        dL/dW   = col^T . dout       (each filter's gradient sums over every position of every image)
        dL/db   = sum of dout over batch and positions
        dL/dx   = col2im(dout . W^T)   (every patch entry's gradient back to the pixel it was copied from)
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b = W, b
        self.stride, self.pad = stride, pad
        self.x_shape = None
        self.col = None  # the (N*OH*OW, FH*FW*C) patch matrix
        self.dW = None
        self.db = None

    def forward(self, x):
        fn = self.W.shape[3]
        patches = im2col(x, *self.W.shape[:2], self.stride, self.pad)  # (N, OH, OW, FH, FW, C)
        n, oh, ow = patches.shape[:3]
        self.x_shape = x.shape
        self.col = patches.reshape(n * oh * ow, -1)
        out = self.col @ self.W.reshape(-1, fn) + self.b
        return out.reshape(n, oh, ow, fn)

    def backward(self, dout):
        kh, kw, c, fn = self.W.shape
        n, oh, ow = dout.shape[:3]
        dout = dout.reshape(-1, fn)
        self.dW = (self.col.T @ dout).reshape(self.W.shape)
        self.db = np.sum(dout, axis=0)
        dcol = dout @ self.W.reshape(-1, fn).T  # one gradient per patch entry
        return col2im(dcol.reshape(n, oh, ow, kh, kw, c), self.x_shape, kh, kw, self.stride, self.pad)


def col2im(col: np.ndarray, x_shape: tuple, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """The way back from im2col: (N, OH, OW, KH, KW, C) patch gradients -> (N, H, W, C) image gradients.

    Every input pixel was copied into each patch that covers it, so it receives the sum of those copies'
    gradients: a copy node sums its branches. One shifted, strided slice per position in the patch."""
    n, h, w, c = x_shape
    oh, ow = col.shape[1:3]
    dx = np.zeros_like(col, shape=(n, h + 2 * pad, w + 2 * pad, c))
    for p in range(kh):
        for q in range(kw):
            inputs_seen = dx[:, p : p + stride * oh : stride, q : q + stride * ow : stride, :]
            inputs_seen += col[:, :, :, p, q, :]
    return dx[:, pad : pad + h, pad : pad + w, :] if pad else dx


class ArgmaxPooling:
    """Max pooling as the textbook writes it, the reference for `Pooling` below (tested equal to it).

    Forward lays every window out as a row (im2col), takes each row's maximum and remembers where it was
    (its arg-max). Backward is the max gate of the computational graph: dout goes to the arg-max, the
    other entries of the window get 0 (d max(a, b)/da = 1 if a won, else 0), and col2im puts the rows
    back into the picture, summing where windows overlap. Clear, and slower than Pooling: the rows are a
    copy of the input, and the scatter to the winners is an indexed write.
    """

    def __init__(self, size=2, stride=2):
        self.size, self.stride = size, stride
        self.x_shape = None
        self.arg_max = None  # per output value: which entry of its window was the largest

    def forward(self, x):
        n, h, w, c = x.shape
        s = self.size
        windows = im2col(x, s, s, self.stride, 0)  # (N, OH, OW, S, S, C)
        oh, ow = windows.shape[1:3]
        rows = windows.transpose(0, 1, 2, 5, 3, 4).reshape(-1, s * s)  # one row per window and channel
        self.x_shape = x.shape
        self.arg_max = rows.argmax(axis=1)  # the first of equal maxima
        return rows.max(axis=1).reshape(n, oh, ow, c)

    def backward(self, dout):
        n, oh, ow, c = dout.shape
        s = self.size
        drows = np.zeros_like(dout, shape=(dout.size, s * s))
        drows[np.arange(dout.size), self.arg_max] = dout.ravel()  # the max gate: all to the winner
        dcol = drows.reshape(n, oh, ow, c, s, s).transpose(0, 1, 2, 4, 5, 3)
        return col2im(dcol, self.x_shape, s, s, self.stride, 0)


class Pooling:
    """Max pooling: out = the largest value in each window (size x size, moved by `stride`), per channel.

    Like the max gate of the computational graph, backward routes dout to the one input that was the
    largest (its arg-max; the first of equal ones) and gives the others 0: d max(a, b)/da = 1 if a won.
    Read `ArgmaxPooling` above first: it computes the same numbers the textbook's way. This version is
    the one networks use, because it never copies the windows out (measured here: about twice as fast).

    As in im2col, the loop runs over the size*size positions inside a window, each a strided view of
    the whole batch. Forward keeps a running maximum and marks where each position beat every position
    before it (strictly: an equal value does not beat); the winner of a window is the last position to
    have done so, which is the first of those holding the maximum. Backward sends dout through the marks.
    """

    def __init__(self, size=2, stride=2):
        self.size, self.stride = size, stride
        self.x_shape = None
        self.winner = None  # per window position: a boolean map of the outputs it won

    def _views(self, x, oh, ow):
        s = self.stride
        return [x[:, i : i + s * oh : s, j : j + s * ow : s, :] for i in range(self.size) for j in range(self.size)]

    def forward(self, x):
        n, h, w, c = x.shape
        oh, ow = output_size(h, self.size, self.stride, 0), output_size(w, self.size, self.stride, 0)
        views = self._views(x, oh, ow)
        self.x_shape = x.shape
        self.winner = won = np.empty_like(x, shape=(len(views), n, oh, ow, c), dtype=bool)
        out = views[0].copy()
        for j in range(1, len(views)):
            np.greater(views[j], out, out=won[j])  # position j beats every earlier one here
            np.maximum(out, views[j], out=out)
        # Keep only the last position that beat all before it, walking back; position 0 wins where none did.
        won_later = won[-1].copy() if len(views) > 1 else np.zeros_like(won[0])
        for j in range(len(views) - 2, 0, -1):
            np.greater(won[j], won_later, out=won[j])  # for booleans, a > b is "a and not b"
            won_later |= won[j]
        np.logical_not(won_later, out=won[0])
        return out

    def backward(self, dout):
        oh, ow = dout.shape[1:3]
        h, w = self.x_shape[1:3]
        overlapping = self.stride < self.size
        # Windows that neither overlap nor leave a row or column out write every input exactly once below,
        # so dx needs no zeros first; otherwise the inputs no window won keep their 0.
        covered = self.stride == self.size and h == oh * self.size and w == ow * self.size
        dx = np.empty_like(dout, shape=self.x_shape) if covered else np.zeros_like(dout, shape=self.x_shape)
        for won, view in zip(self.winner, self._views(dx, oh, ow)):
            if overlapping:
                view += dout * won  # an input in two windows sums what both send it
            else:
                np.multiply(dout, won, out=view)  # each input sits in one window: write, no sum needed
        return dx


class SpatialBatchNorm(BatchNorm):
    """BatchNorm for feature maps: one mean, std, gamma and beta per channel, over batch, height and width.

    In NHWC a (N, H, W, C) map is, as far as BatchNorm can tell, N*H*W samples of C features: reshape,
    normalize exactly as the dense BatchNorm does (same forward, same backward), reshape back."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    def backward(self, dout):
        return super().backward(dout.reshape(-1, dout.shape[-1])).reshape(dout.shape)


class ToImage:
    """(N, C*H*W) rows of pixels -> (N, H, W, C) images: where the CSV's rows become pictures.

    A reshape moves no numbers, so backward only reshapes the gradient back."""

    def __init__(self, channels, height, width):
        self.shape = (height, width, channels)

    def forward(self, x):
        if self.shape[2] == 1:
            return x.reshape(len(x), *self.shape)
        return x.reshape(len(x), self.shape[2], *self.shape[:2]).transpose(0, 2, 3, 1)  # CSV rows are C, H, W

    def backward(self, dout):
        if self.shape[2] == 1:
            return dout.reshape(len(dout), -1)
        return dout.transpose(0, 3, 1, 2).reshape(len(dout), -1)


class Flatten:
    """(N, H, W, C) maps -> (N, H*W*C) vectors: where the image becomes a vector for the dense layers."""

    def __init__(self):
        self.x_shape = None

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout):
        return dout.reshape(self.x_shape)
