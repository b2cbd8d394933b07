"""The full network: simple_network.py's idea -- layers in a row, forward in order, backward in reverse --
with every kind of layer the lesson has, on any device, built for speed.

Read after simple_network.py and conv.py. Each layer turns dL/d(its output) into dL/d(its input) and
keeps its parameters' gradients beside the parameters; the network only has to call them in the right
order, and to gather what they hold:

    net = Network(784, [50], 10)            # 784 pixels -> 50 ReLU units -> 10 classes
    net.loss(x, t)                          # forward: the mean cross-entropy of a batch
    grads = net.gradient(x, t)              # backward: {"W1": dL/dW1, "b1": ..., "W2": ..., "b2": ...}
    numeric = net.numerical_gradient(x, t)  # central differences: the slow, obvious check

The arguments are plain values, like the textbook's `MultiLayerNet(input_size, hidden_size_list,
output_size, ...)`; a YAML config is turned into them by the tool around the lesson, never here.

The layers are fast_layers.py's: the lesson's classes with what a training step needs, checked equal to
them. Each layer with parameters says what they are (`params()`, `grads()`: name -> array). The network
names them by position -- W1, b1 for the first layer, gamma2 for a BatchNorm -- and lays them end to end
in one vector, their gradients in another (vectors.py), so that an optimizer steps over all at once.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .backend import like, to_device, to_host
from .conv import Flatten, Pooling, ToImage, output_size
from .fast_layers import (
    DEVICE_LOSSES,
    DeviceDropout,
    FastAffine,
    FastBatchNorm,
    FastConvolution,
    FastSpatialBatchNorm,
)
from .gradient import DEFAULT_H, numerical_gradient
from .layers import ReLU, Sigmoid, Tanh
from .vectors import pack, views

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
INITS = ("auto", "he", "xavier")


@dataclass(frozen=True)
class ConvBlock:
    """Convolution (`filters` kernels of `kernel` x `kernel`) -> [BatchNorm] -> activation ->
    [`pool` x `pool` max pooling, stride `pool`, when pool > 1] -> [Dropout]."""

    filters: int
    kernel: int = 3
    stride: int = 1
    pad: int = 0
    activation: str = "relu"
    pool: int = 0
    batchnorm: bool = False
    dropout: float = 0.0


def conv_shapes(input_shape, blocks) -> list[tuple[int, int, int]]:
    """(H, W, C) of the input image ([C, H, W]) and of the maps each conv block leaves, after its pooling."""
    channels, height, width = input_shape
    shapes = [(height, width, channels)]
    for block in blocks:
        height, width = (output_size(side, block.kernel, block.stride, block.pad) for side in (height, width))
        if block.pool > 1:
            height, width = height // block.pool, width // block.pool
        shapes.append((height, width, block.filters))
    return shapes


def init_std(scheme, activation: str, fan_in: int) -> float:
    """He (sqrt(2/n)) suits ReLU, Xavier (sqrt(1/n)) suits sigmoid and tanh; a number is the std itself."""
    if not isinstance(scheme, str):
        return float(scheme)
    if scheme == "auto":
        scheme = "he" if activation == "relu" else "xavier"
    return np.sqrt((2.0 if scheme == "he" else 1.0) / fan_in)


def per_layer(value, count: int, what: str) -> list:
    """One value for every hidden layer, or a list with one per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{what}: {len(value)} values for {count} hidden layers")
        return list(value)
    return [value] * count


class Network:
    """A stack of layers, in order:

        [ToImage -> (Convolution -> [BatchNorm] -> [Pooling] -> activation -> [Dropout]) per conv block -> Flatten]
        [Dropout] -> (Affine -> [BatchNorm] -> activation -> [Dropout]) per hidden size -> Affine -> loss

    `activation`, `batchnorm` and `dropout` are one value for every hidden layer or a list of one per
    layer; `conv` is a list of ConvBlock (then `input_shape` [C, H, W] says how a row is an image);
    `init` is "auto" (He for ReLU, Xavier otherwise), "he", "xavier" or a number, the standard deviation.
    `loss` is a key of losses.LOSSES; `weight_decay` adds (decay / 2) * sum of W^2 to the loss. `xp` is
    numpy, or cupy for a network on the GPU (backend.py). Parameters are numbered in network order: a
    CNN's convolutions are W1, W2, ..., and its dense layers continue the count."""

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes=(100,),
        output_size: int = 10,
        activation="relu",
        batchnorm=False,
        dropout=0.0,
        input_dropout: float = 0.0,
        conv=(),
        input_shape=None,
        init="auto",
        loss: str = "softmax_cross_entropy",
        weight_decay: float = 0.0,
        dtype=np.float64,
        seed: int = 0,
        xp=np,
    ):
        hidden_sizes, conv = list(hidden_sizes), list(conv)
        self.xp, self.dtype, self.weight_decay, self.init = xp, np.dtype(dtype), weight_decay, init
        self.input_shape = list(input_shape) if input_shape is not None else [1, input_size, 1]
        self.shapes = conv_shapes(self.input_shape, conv)  # what each conv block leaves
        self.init_rng = np.random.default_rng([seed, 0])
        self.dropout_rng = np.random.default_rng([seed, 1])
        self.layers: OrderedDict[str, object] = OrderedDict()
        self.params: OrderedDict[str, np.ndarray] = OrderedDict()  # "W1" -> the array (a view, see _pack)
        self.buffers: OrderedDict[str, np.ndarray] = OrderedDict()  # BatchNorm's running averages
        self.keys: dict[str, dict[str, str]] = {}  # layer name -> {"W": "W1", "b": "b1"}
        if conv:
            self._add("ToImage", ToImage(*self.input_shape))
            for i, block in enumerate(conv, start=1):
                self._add_conv_block(i, block, self.shapes[i - 1][2])
            self._add("Flatten", Flatten())
        elif input_dropout > 0:
            self._add("Dropout0", DeviceDropout(input_dropout, self.dropout_rng))
        self.sizes = [input_size, *hidden_sizes, output_size]  # pixels in, hidden widths, classes out
        height, width, channels = self.shapes[-1]
        widths = [height * width * channels if conv else input_size, *hidden_sizes, output_size]
        activations = per_layer(activation, len(hidden_sizes), "activation")
        last = activations[-1] if activations else (conv[-1].activation if conv else "relu")
        self._add_dense_layers(
            len(conv) + 1,
            widths,
            activations + [last],
            per_layer(batchnorm, len(hidden_sizes), "batchnorm"),
            per_layer(dropout, len(hidden_sizes), "dropout"),
        )
        self._pack()
        self.last_layer = DEVICE_LOSSES[loss]()  # the output and the loss, see losses.py
        self.last_loss = float("nan")  # the loss of the latest forward pass, read by the training loop
        # Rows per chunk when evaluating: a convolution's patch matrix holds KH*KW*C numbers per output
        # pixel, so a CNN evaluates in chunks whose patch matrices stay near 256 MB.
        patch_bytes = sum(self.dtype.itemsize * h * w * b.kernel**2 * c for b, (h, w, c) in zip(conv, self.shapes))
        self.eval_batch = int(np.clip(2**28 // max(patch_bytes, 1), 100, 10_000))

    # --- building ----------------------------------------------------------------------------------------

    def _weights(self, shape, std: float) -> np.ndarray:
        """Initial weights, drawn on the host (the same on every device) and moved to the network's."""
        return to_device((std * self.init_rng.standard_normal(shape)).astype(self.dtype), self.xp)

    def _zeros(self, size: int) -> np.ndarray:
        return self.xp.zeros(size, dtype=self.dtype)

    def _ones(self, size: int) -> np.ndarray:
        return self.xp.ones(size, dtype=self.dtype)

    def _add(self, name: str, layer, number: int | None = None) -> None:
        """Append a layer; its parameters (if any) are named by `number`: W -> "W1", gamma -> "gamma1"."""
        self.layers[name] = layer
        if hasattr(layer, "params"):
            self.keys[name] = {}
            for param, array in layer.params().items():
                self.keys[name][param] = key = f"{param}{number}"
                self.params[key] = array

    def _add_dense_layers(self, first: int, widths, activations, batchnorms, dropouts) -> None:
        """Affine -> [BatchNorm] -> activation -> [Dropout] per hidden width, then the output Affine."""
        for j, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            i, hidden = first + j, j < len(batchnorms)
            W = self._weights((fan_in, fan_out), init_std(self.init, activations[j], fan_in))
            # Before BatchNorm a bias is useless -- BN subtracts the batch mean, so its gradient is exactly
            # 0 -- and beta takes its place.
            b = None if hidden and batchnorms[j] else self._zeros(fan_out)
            self._add(f"Affine{i}", FastAffine(W, b, need_dx=i > 1), i)
            if hidden:
                self._add_normalize_activate_drop(i, fan_out, activations[j], batchnorms[j], dropouts[j], FastBatchNorm)

    def _add_conv_block(self, i: int, block: ConvBlock, channels: int) -> None:
        k = block.kernel
        W = self._weights((k, k, channels, block.filters), init_std(self.init, block.activation, k * k * channels))
        b = None if block.batchnorm else self._zeros(block.filters)
        self._add(f"Convolution{i}", FastConvolution(W, b, block.stride, block.pad, need_dx=i > 1), i)
        self._add_normalize_activate_drop(
            i,
            block.filters,
            block.activation,
            block.batchnorm,
            block.dropout,
            FastSpatialBatchNorm,
            pool=block.pool if block.pool > 1 else 0,
        )

    def _add_normalize_activate_drop(self, i, width, activation, batchnorm, dropout, norm_class, pool=0) -> None:
        """[BatchNorm] -> [Pooling] -> activation -> [Dropout].

        A block is "activation, then max pool" and is built the other way round, which is the same
        function: every activation here rises with its input (ReLU, sigmoid and tanh never fall), so the
        largest of four activations is the activation of the largest input, and backward routes dout to
        the same winner. Pooling first leaves the activation a quarter of the values to touch."""
        if batchnorm:
            mean = self.buffers[f"running_mean{i}"] = self._zeros(width)
            var = self.buffers[f"running_var{i}"] = self._ones(width)
            self._add(f"BatchNorm{i}", norm_class(self._ones(width), self._zeros(width), mean, var), i)
        if pool:
            self._add(f"Pooling{i}", Pooling(pool, pool))
        self._add(f"{activation.capitalize()}{i}", ACTIVATIONS[activation]())
        if dropout > 0:
            self._add(f"Dropout{i}", DeviceDropout(dropout, self.dropout_rng))

    def _pack(self) -> None:
        """Lay the parameters end to end in one vector and their gradients in another (vectors.py), and have
        each layer use views of them from now on (layer.W is the view of W1, layer.dW that of its gradient)."""
        shapes = {key: p.shape for key, p in self.params.items()}
        self.param_vector, params = pack(self.params)
        self.params = OrderedDict(params)
        self.grad_vector = np.zeros_like(self.param_vector)
        self.grads = views(self.grad_vector, shapes)
        for name, keys in self.keys.items():
            self.layers[name].bind(
                {param: self.params[key] for param, key in keys.items()},
                {param: self.grads[key] for param, key in keys.items()},
            )

    # --- modes -------------------------------------------------------------------------------------------

    def set_flag(self, attribute: str, value: bool) -> None:
        """Set `train` or `frozen` on every layer that has it (Dropout, BatchNorm)."""
        for layer in self.layers.values():
            if hasattr(layer, attribute):
                setattr(layer, attribute, value)

    @contextmanager
    def frozen(self):
        """Within this block Dropout reuses its last mask and BatchNorm leaves its running averages alone,
        so the loss is one fixed function of the parameters, as a numerical gradient needs."""
        self.set_flag("frozen", True)
        try:
            yield self
        finally:
            self.set_flag("frozen", False)

    # --- forward -----------------------------------------------------------------------------------------

    def predict(self, x: np.ndarray, train: bool = False, batch_size: int | None = None) -> np.ndarray:
        """Class scores (before softmax). Evaluation mode unless `train`; `batch_size` bounds memory."""
        self.set_flag("train", train)
        if batch_size is not None:
            batch_size = min(batch_size, self.eval_batch)
        if batch_size is not None and len(x) > batch_size:
            return np.concatenate([self.predict(x[i : i + batch_size], train) for i in range(0, len(x), batch_size)])
        x = to_device(x, self.xp).astype(self.dtype, copy=False)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities from `predict`'s scores, as the loss head defines them."""
        return self.last_layer.probabilities(scores)

    def loss_terms(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> tuple[float, float]:
        """(mean cross-entropy of the batch, L2 penalty (weight_decay / 2) * sum of W^2 over all W)."""
        data_loss, penalty = self.last_layer.forward(self.predict(x, train), to_device(t, self.xp)), self.penalty()
        self.last_loss = data_loss + penalty
        return data_loss, penalty

    def penalty(self) -> float:
        """Weight decay's term of the loss, (weight_decay / 2) * sum of W^2 over all W (0 without decay)."""
        # vdot(W, W) sums squares in one BLAS call; the float64 total is read once (each GPU read waits)
        keys = self.weight_keys if self.weight_decay else ()
        squares = sum(np.vdot(self.params[k], self.params[k]).astype(np.float64, copy=False) for k in keys)
        return 0.5 * self.weight_decay * float(squares)

    def loss(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        """The loss minimized: the data loss (cross-entropy by default) plus the L2 penalty."""
        return sum(self.loss_terms(x, t, train))

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 10_000) -> float:
        labels = to_device(t.argmax(axis=1) if t.ndim == 2 else t, self.xp)
        predicted = self.predict(x, batch_size=batch_size).argmax(axis=1)
        return float(np.mean(predicted == labels))

    # --- gradients ---------------------------------------------------------------------------------------

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Backpropagation: one forward pass in training mode, then every layer's backward in reverse.

        Returns {key: gradient} with the keys of `params`. The arrays are the layers' own dW, db, ..., views
        of `grad_vector`, overwritten by the next call.
        """
        self.loss(x, t, train=True)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
            if dout is None:  # the first Affine: what lies before it (data, input dropout) has no params
                break
        self._gather_gradients()
        self.add_decay_gradients()
        return dict(self.grads)

    def add_decay_gradients(self) -> None:
        """Add weight decay's part to the gradients: d/dW of (decay / 2) * W^2 is decay * W."""
        for key in self.weight_keys if self.weight_decay else ():
            self.grads[key] += self.weight_decay * self.params[key]

    def _gather_gradients(self) -> None:
        """Our layers write their gradients into the views they were given; a layer written as the textbook
        writes it (`self.dW = x.T @ dout`) makes a new array instead, which is copied into the vector."""
        for name, keys in self.keys.items():
            for param, computed in self.layers[name].grads().items():
                if computed is not self.grads[keys[param]]:
                    self.grads[keys[param]][...] = computed

    def numerical_gradient(
        self,
        x: np.ndarray,
        t: np.ndarray,
        h: float = DEFAULT_H,
        keep_masks: bool = False,
        indices: dict | None = None,
        progress=None,
        crossed: dict | None = None,
    ) -> dict[str, np.ndarray]:
        """Central differences over every entry of every parameter (float64 networks only); with
        `indices` ({key: list of index tuples}), over those entries only, the rest left at 0.

        Like a training step, it first runs one forward pass that draws fresh dropout masks and updates
        BatchNorm's running averages -- unless `keep_masks`, which reuses the masks of the last `gradient`
        call so that the two can be compared. All other passes are made with the network frozen. With
        `crossed` ({key: []}), the entries whose +-h passes flipped a ReLU or a max pool are listed there.
        """
        if not keep_masks:
            self.loss(x, t, train=True)
        with self.frozen():
            grads = {
                key: numerical_gradient(
                    lambda: self.loss_terms(x, t, train=True),
                    param,
                    h,
                    indices=None if indices is None else indices[key],
                    progress=progress,
                    decisions=self.decisions if crossed is not None else None,
                    crossed=None if crossed is None else crossed[key],
                )
                for key, param in self.params.items()
            }
            self.loss(x, t, train=True)  # leave last_loss and the softmax output at the unperturbed point
        return grads

    def decisions(self) -> bytes:
        """Which way every kink went in the last forward pass: each ReLU's mask (input > 0) and each max
        pool's winners, packed into bytes. Two passes with equal decisions lie on one smooth piece of the
        loss; a step of a numerical gradient that changes them has crossed a kink."""
        parts = []
        for layer in self.layers.values():
            went = getattr(layer, "mask", None) if isinstance(layer, ReLU) else getattr(layer, "winner", None)
            if went is not None:
                parts.append(np.packbits(to_host(went)).tobytes())
        return b"".join(parts)

    # --- state -------------------------------------------------------------------------------------------

    @property
    def weight_keys(self) -> list[str]:
        """The weight matrices W1, W2, ...: the parameters weight decay applies to (not biases)."""
        return [keys["W"] for keys in self.keys.values() if "W" in keys]

    @property
    def vectors(self) -> tuple:
        """(param_vector, grad_vector): every parameter, and every gradient `gradient` returns, end to end in
        the order of `params`; for an optimizer's `update(..., vectors=)`."""
        return self.param_vector, self.grad_vector

    @property
    def parameter_count(self) -> int:
        return sum(p.size for p in self.params.values())

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and buffers as NumPy arrays (the arrays themselves on the CPU, copies from a GPU)."""
        return {key: to_host(value) for key, value in {**self.params, **self.buffers}.items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays into the existing ones (in place, so the layers keep seeing them)."""
        for key, target in {**self.params, **self.buffers}.items():
            target[...] = like(target, arrays[key])
