"""The network: an ordered stack of layers, built from a config, with backprop and numerical gradients.

Forward runs the layers in order; backward runs them in reverse, each turning dL/d(its output) into
dL/d(its input) while storing its parameters' gradients. The parameters live in one ordered dict,
`params` (W1, b1, W2, b2, ..., plus gamma/beta for BatchNorm), and the layers hold the very same arrays,
so an optimizer updating `params` in place updates the network. Those arrays are views of one vector,
`param_vector`, and the layers' gradients (dW, db, ...) views of another, `grad_vector`, so that an
optimizer may step over all of them at once (see vectors.py).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from . import conv as C
from .backend import array_module, like, to_device, to_host
from . import layers as L
from .config import Config
from .gradient import DEFAULT_H, numerical_gradient
from .losses import LOSSES
from .vectors import pack, views

ACTIVATION_LAYERS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}


def init_std(scheme, activation: str, fan_in: int) -> float:
    """He (sqrt(2/n)) suits ReLU, Xavier (sqrt(1/n)) suits sigmoid and tanh; a number is the std itself."""
    if not isinstance(scheme, str):
        return float(scheme)
    if scheme == "auto":
        scheme = "he" if activation == "relu" else "xavier"
    return np.sqrt((2.0 if scheme == "he" else 1.0) / fan_in)


class Network:
    """A stack of layers, in order:

        [ToImage -> (Convolution -> [BatchNorm] -> activation -> [Pooling] -> [Dropout]) x conv -> Flatten]
        [Dropout] -> (Affine -> [BatchNorm] -> activation -> [Dropout]) x hidden -> Affine -> SoftmaxWithLoss

    The bracketed conv part is there only when the config has `model.conv` blocks. Parameters are numbered
    in network order: a CNN's convolutions are W1, W2, ..., and its dense layers continue the count."""

    def __init__(self, config: Config, seed: int = 0, dtype=None, xp=np):
        model = config.model
        self.xp = xp  # numpy, or cupy for a network on the GPU (see backend.py)
        self.dtype = np.dtype(dtype if dtype is not None else model.dtype)
        self.weight_decay = config.train.weight_decay
        self.sizes = config.layer_sizes
        self.init_rng = np.random.default_rng([seed, 0])
        self.dropout_rng = np.random.default_rng([seed, 1])

        self.params: OrderedDict[str, np.ndarray] = OrderedDict()
        self.buffers: OrderedDict[str, np.ndarray] = OrderedDict()  # BatchNorm running averages
        self.layers: OrderedDict[str, object] = OrderedDict()
        self._grad_source: dict[str, tuple[object, str]] = {}  # "W1" -> (layer holding it, "dW")
        if model.conv:
            self.layers["ToImage"] = C.ToImage(*model.input_shape)
            for i, (block, (_, _, channels)) in enumerate(zip(model.conv, config.conv_shapes()), start=1):
                self._add_conv_block(i, block, channels, model.init)
            self.layers["Flatten"] = C.Flatten()
        elif model.input_dropout > 0:
            self.layers["Dropout0"] = L.Dropout(model.input_dropout, self.dropout_rng)

        first = len(model.conv) + 1
        dense_sizes = [config.dense_input_size(), *self.sizes[1:]]
        activations = [h.activation for h in model.hidden]
        last_activation = activations[-1] if activations else (model.conv[-1].activation if model.conv else "relu")
        for i, (fan_in, fan_out) in enumerate(zip(dense_sizes[:-1], dense_sizes[1:]), start=first):
            hidden = model.hidden[i - first] if i - first < len(model.hidden) else None
            std = init_std(model.init, hidden.activation if hidden else last_activation, fan_in)
            W = self._param(f"W{i}", std * self.init_rng.standard_normal((fan_in, fan_out)))
            # Before BatchNorm a bias is useless -- BN subtracts the batch mean, so its gradient is exactly
            # 0 -- and beta takes its place.
            b = None if hidden and hidden.batchnorm else self._param(f"b{i}", np.zeros(fan_out))
            self._add(f"Affine{i}", L.Affine(W, b, need_dx=i > 1), W=f"W{i}", b=f"b{i}" if b is not None else None)
            if hidden is None:
                break
            self._add_normalize_activate_drop(i, hidden, fan_out, L.BatchNorm)
        self._pack()
        self.last_layer = LOSSES[model.loss]()  # the output and the loss, see losses.py
        self.last_loss = float("nan")  # the loss of the latest forward pass, read by the training loop
        # Rows per chunk when evaluating: a convolution's patch matrix holds KH*KW*C numbers per output
        # pixel, so a CNN evaluates in chunks whose patch matrices stay near 256 MB.
        patch_bytes = sum(self.dtype.itemsize * h * w * b.kernel ** 2 * c
                          for b, (h, w, c) in zip(model.conv, config.conv_shapes()))
        self.eval_batch = int(np.clip(2**28 // max(patch_bytes, 1), 100, 10_000))

    def _param(self, key: str, values: np.ndarray) -> np.ndarray:
        """A parameter, drawn on the host (the same weights on every device) and moved to the network's."""
        array = self.params[key] = to_device(values.astype(self.dtype), self.xp)
        return array

    def _add(self, name: str, layer, **grads) -> None:
        """Append a layer; `grads` maps its gradient attributes to parameter keys (W="W1" -> dW is W1's)."""
        self.layers[name] = layer
        for attribute, key in grads.items():
            if key is not None:
                self._grad_source[key] = (layer, "d" + attribute)

    def _pack(self) -> None:
        """Lay the parameters end to end in one vector and their gradients in another (vectors.py), and give
        each layer views of them in place of the arrays it was built with (layer.W, layer.dW, ...)."""
        self.param_vector, params = pack(self.params)
        self.params = OrderedDict(params)
        self.grad_vector = np.zeros_like(self.param_vector)
        self._grads = views(self.grad_vector, {key: p.shape for key, p in self.params.items()})
        for key, (layer, gradient_attribute) in self._grad_source.items():
            setattr(layer, gradient_attribute[1:], self.params[key])   # layer.W = the view of W1
            setattr(layer, gradient_attribute, self._grads[key])       # layer.dW = the view of dW1

    def _add_conv_block(self, i: int, block, channels: int, init) -> None:
        k = block.kernel
        std = init_std(init, block.activation, k * k * channels)
        W = self._param(f"W{i}", std * self.init_rng.standard_normal((k, k, channels, block.filters)))
        b = None if block.batchnorm else self._param(f"b{i}", np.zeros(block.filters))
        self._add(f"Convolution{i}", C.Convolution(W, b, block.stride, block.pad, need_dx=i > 1),
                  W=f"W{i}", b=f"b{i}" if b is not None else None)
        self._add_normalize_activate_drop(i, block, block.filters, C.SpatialBatchNorm,
                                          pool=block.pool if block.pool > 1 else 0)

    def _add_normalize_activate_drop(self, i: int, spec, width: int, norm_class, pool: int = 0) -> None:
        """[BatchNorm] -> activation -> [Pooling] -> [Dropout], as `spec` (a hidden layer or conv block) asks."""
        if spec.batchnorm:
            gamma = self._param(f"gamma{i}", np.ones(width))
            beta = self._param(f"beta{i}", np.zeros(width))
            mean = self.buffers[f"running_mean{i}"] = self.xp.zeros(width, dtype=self.dtype)
            var = self.buffers[f"running_var{i}"] = self.xp.ones(width, dtype=self.dtype)
            self._add(f"BatchNorm{i}", norm_class(gamma, beta, mean, var), gamma=f"gamma{i}", beta=f"beta{i}")
        self.layers[f"{spec.activation.capitalize()}{i}"] = ACTIVATION_LAYERS[spec.activation]()
        if pool:
            self.layers[f"Pooling{i}"] = C.Pooling(pool, pool)
        if spec.dropout > 0:
            self.layers[f"Dropout{i}"] = L.Dropout(spec.dropout, self.dropout_rng)

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
            return np.concatenate([self.predict(x[i:i + batch_size], train)
                                   for i in range(0, len(x), batch_size)])
        x = to_device(x, self.xp).astype(self.dtype, copy=False)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Class probabilities from `predict`'s scores, as the loss head defines them."""
        return self.last_layer.probabilities(scores)

    def loss_terms(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> tuple[float, float]:
        """(mean cross-entropy of the batch, L2 penalty (weight_decay / 2) * sum of W^2 over all W)."""
        data_loss = self.last_layer.forward(self.predict(x, train), to_device(t, self.xp))
        penalty = 0.0
        if self.weight_decay:
            # vdot(W, W) is the sum of squares in one BLAS call, with no temporary array. The sums are
            # added (in float64) where they live and read once: on a GPU each read makes the host wait.
            squares = sum(np.vdot(self.params[key], self.params[key]).astype(np.float64, copy=False)
                          for key in self.weight_keys)
            penalty = 0.5 * self.weight_decay * float(squares)
        self.last_loss = data_loss + penalty
        return data_loss, penalty

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
        grads = dict(self._grads)
        for key, (layer, attribute) in self._grad_source.items():
            computed = getattr(layer, attribute)
            if computed is not grads[key]:  # a layer that made a new array rather than writing into its view
                grads[key][...] = computed
                setattr(layer, attribute, grads[key])
        if self.weight_decay:
            for key in self.weight_keys:
                grads[key] += self.weight_decay * self.params[key]  # d/dW of (decay / 2) * W^2
        return grads

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray, h: float = DEFAULT_H, keep_masks: bool = False,
                           indices: dict | None = None, progress=None) -> dict[str, np.ndarray]:
        """Central differences over every entry of every parameter (float64 networks only); with
        `indices` ({key: list of index tuples}), over those entries only, the rest left at 0.

        Like a training step, it first runs one forward pass that draws fresh dropout masks and updates
        BatchNorm's running averages -- unless `keep_masks`, which reuses the masks of the last `gradient`
        call so that the two can be compared. All other passes are made with the network frozen.
        """
        if not keep_masks:
            self.loss(x, t, train=True)
        with self.frozen():
            grads = {key: numerical_gradient(lambda: self.loss_terms(x, t, train=True), param, h,
                                             indices=None if indices is None else indices[key], progress=progress)
                     for key, param in self.params.items()}
            self.loss(x, t, train=True)  # leave last_loss and the softmax output at the unperturbed point
        return grads

    # --- state -------------------------------------------------------------------------------------------

    @property
    def weight_keys(self) -> list[str]:
        """The weight matrices W1, W2, ...: the parameters weight decay applies to (not biases)."""
        return [key for key in self.params if key.startswith("W")]

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


def build_network(config: Config, seed: int = 0, dtype=None, device: str = "cpu") -> Network:
    """The network a config describes; `dtype` (a name like "float64" or a NumPy dtype) overrides the
    config's training dtype; `device` "cuda" puts it on the GPU (backend.py)."""
    return Network(config, seed=seed, dtype=dtype, xp=array_module(device))
