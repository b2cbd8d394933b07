"""The network: an ordered stack of layers, built from a config, with backprop and numerical gradients.

Forward runs the layers in order; backward runs them in reverse, each turning dL/d(its output) into
dL/d(its input) while storing its parameters' gradients. The parameters live in one ordered dict,
`params` (W1, b1, W2, b2, ..., plus gamma/beta for BatchNorm), and the layers hold the very same arrays,
so an optimizer updating `params` in place updates the network.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from . import layers as L
from .config import Config
from .gradient import DEFAULT_H, numerical_gradient

ACTIVATION_LAYERS = {"relu": L.ReLU, "sigmoid": L.Sigmoid, "tanh": L.Tanh}


def init_std(scheme, activation: str, fan_in: int) -> float:
    """He (sqrt(2/n)) suits ReLU, Xavier (sqrt(1/n)) suits sigmoid and tanh; a number is the std itself."""
    if not isinstance(scheme, str):
        return float(scheme)
    if scheme == "auto":
        scheme = "he" if activation == "relu" else "xavier"
    return np.sqrt((2.0 if scheme == "he" else 1.0) / fan_in)


class Network:
    """A multi-layer perceptron: [Dropout] -> (Affine -> [BatchNorm] -> activation -> [Dropout]) x hidden
    -> Affine -> SoftmaxWithLoss."""

    def __init__(self, config: Config, seed: int = 0, dtype=None):
        model = config.model
        self.dtype = np.dtype(dtype if dtype is not None else model.dtype)
        self.weight_decay = config.train.weight_decay
        self.sizes = config.layer_sizes
        init_rng = np.random.default_rng([seed, 0])
        self.dropout_rng = np.random.default_rng([seed, 1])

        self.params: OrderedDict[str, np.ndarray] = OrderedDict()
        self.buffers: OrderedDict[str, np.ndarray] = OrderedDict()  # BatchNorm running averages
        self.layers: OrderedDict[str, object] = OrderedDict()
        self._grad_source: dict[str, tuple[object, str]] = {}  # "W1" -> (layer holding it, "dW")
        if model.input_dropout > 0:
            self.layers["Dropout0"] = L.Dropout(model.input_dropout, self.dropout_rng)

        activations = [h.activation for h in model.hidden]
        last_activation = activations[-1] if activations else "relu"
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            hidden = model.hidden[i - 1] if i <= len(model.hidden) else None
            std = init_std(model.init, hidden.activation if hidden else last_activation, fan_in)
            W = self.params[f"W{i}"] = (std * init_rng.standard_normal((fan_in, fan_out))).astype(self.dtype)
            # Before BatchNorm a bias is useless -- BN subtracts the batch mean, so its gradient is exactly
            # 0 -- and beta takes its place.
            b = None
            if not (hidden and hidden.batchnorm):
                b = self.params[f"b{i}"] = np.zeros(fan_out, dtype=self.dtype)
            affine = self.layers[f"Affine{i}"] = L.Affine(W, b, need_dx=i > 1)
            self._grad_source[f"W{i}"] = (affine, "dW")
            if b is not None:
                self._grad_source[f"b{i}"] = (affine, "db")
            if hidden is None:
                break
            if hidden.batchnorm:
                gamma = self.params[f"gamma{i}"] = np.ones(fan_out, dtype=self.dtype)
                beta = self.params[f"beta{i}"] = np.zeros(fan_out, dtype=self.dtype)
                mean = self.buffers[f"running_mean{i}"] = np.zeros(fan_out, dtype=self.dtype)
                var = self.buffers[f"running_var{i}"] = np.ones(fan_out, dtype=self.dtype)
                norm = self.layers[f"BatchNorm{i}"] = L.BatchNorm(gamma, beta, mean, var)
                self._grad_source.update({f"gamma{i}": (norm, "dgamma"), f"beta{i}": (norm, "dbeta")})
            self.layers[f"{hidden.activation.capitalize()}{i}"] = ACTIVATION_LAYERS[hidden.activation]()
            if hidden.dropout > 0:
                self.layers[f"Dropout{i}"] = L.Dropout(hidden.dropout, self.dropout_rng)
        self.last_layer = L.SoftmaxWithLoss()
        self.last_loss = float("nan")  # the loss of the latest forward pass, read by the training loop

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
        if batch_size is not None and len(x) > batch_size:
            return np.concatenate([self.predict(x[i:i + batch_size], train)
                                   for i in range(0, len(x), batch_size)])
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss_terms(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> tuple[float, float]:
        """(mean cross-entropy of the batch, L2 penalty (weight_decay / 2) * sum of W^2 over all W)."""
        data_loss = self.last_layer.forward(self.predict(x, train), t)
        penalty = 0.0
        if self.weight_decay:
            # vdot(W, W) is the sum of squares in one BLAS call, with no temporary array.
            penalty = 0.5 * self.weight_decay * sum(float(np.vdot(self.params[key], self.params[key]))
                                                    for key in self.weight_keys)
        self.last_loss = data_loss + penalty
        return data_loss, penalty

    def loss(self, x: np.ndarray, t: np.ndarray, train: bool = False) -> float:
        """The loss minimized: cross-entropy plus the L2 penalty."""
        return sum(self.loss_terms(x, t, train))

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 10_000) -> float:
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        predicted = self.predict(x, batch_size=batch_size).argmax(axis=1)
        return float(np.mean(predicted == labels))

    # --- gradients ---------------------------------------------------------------------------------------

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Backpropagation: one forward pass in training mode, then every layer's backward in reverse.

        Returns {key: gradient} with the keys of `params`. The arrays are the layers' own dW, db, ...,
        overwritten by the next call.
        """
        self.loss(x, t, train=True)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
            if dout is None:  # the first Affine: what lies before it (data, input dropout) has no params
                break
        grads = {key: getattr(layer, attribute) for key, (layer, attribute) in self._grad_source.items()}
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
    def parameter_count(self) -> int:
        return sum(p.size for p in self.params.values())

    def state(self) -> dict[str, np.ndarray]:
        return {**self.params, **self.buffers}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays into the existing ones (in place, so the layers keep seeing them)."""
        for key, target in {**self.params, **self.buffers}.items():
            target[...] = arrays[key]


def build_network(config: Config, seed: int = 0, dtype=None) -> Network:
    """The network a config describes; `dtype` (a name like "float64" or a NumPy dtype) overrides the
    config's training dtype."""
    return Network(config, seed=seed, dtype=dtype)
