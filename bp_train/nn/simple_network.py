"""A first network: the layers of layers.py in a row, trained by backpropagation.

Read this right after layers.py. It is the textbook's multi-layer network (Saito, ch. 5: TwoLayerNet,
then MultiLayerNet) and nothing more: an ordered list of layers, a loss at the end, and four methods.

    net = SimpleNetwork(input_size=784, hidden_sizes=[50], output_size=10)
    net.loss(x, t)                          # forward: the mean cross-entropy of a batch
    grads = net.gradient(x, t)              # backward: {"W1": dL/dW1, "b1": ..., "W2": ..., "b2": ...}
    numeric = net.numerical_gradient(x, t)  # central differences: the slow, obvious check

    Affine1 -> ReLU1 -> Affine2 -> ReLU2 -> ... -> AffineL -> SoftmaxWithLoss

Forward runs the layers in order. Backward starts from dL/dL = 1 at the loss and runs them in reverse,
each layer turning dL/d(its output) into dL/d(its input) and keeping its parameters' gradients beside
the parameters (layer.dW beside layer.W). That is all backpropagation is: the chain rule, node by node.

network.py builds the same idea with more kinds of layer (convolutions, BatchNorm, dropout, other
losses), on a GPU too, and faster; a test checks that both give the same gradients on the same weights.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .gradient import numerical_gradient
from .layers import Affine, ReLU, Sigmoid, SoftmaxWithLoss, Tanh

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


class SimpleNetwork:
    """input -> (Affine -> activation) for each hidden size -> Affine -> SoftmaxWithLoss.

    The weights start as Gaussian noise: He's scale sqrt(2 / fan_in) for ReLU, Xavier's sqrt(1 / fan_in)
    for sigmoid and tanh (Saito, ch. 6), so that the signal keeps its size from layer to layer. Biases
    start at 0. The parameters are named by layer: W1, b1 for the first Affine, W2, b2 for the second."""

    def __init__(
        self, input_size=784, hidden_sizes=(100,), output_size=10, activation="relu", seed=0, dtype=np.float64
    ):
        rng = np.random.default_rng([seed, 0])
        sizes = [input_size, *hidden_sizes, output_size]
        self.params = {}
        self.layers = OrderedDict()
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            scale = np.sqrt((2.0 if activation == "relu" else 1.0) / fan_in)
            self.params[f"W{i}"] = (scale * rng.standard_normal((fan_in, fan_out))).astype(dtype)
            self.params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
            self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"])
            if i < len(sizes) - 1:  # every layer but the last is followed by its activation
                self.layers[f"{activation.capitalize()}{i}"] = ACTIVATIONS[activation]()
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        """The class scores: every layer's forward, in order (before softmax, which the loss applies)."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """The mean cross-entropy of the batch: predict, then the loss layer's forward."""
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x, t):
        return float(np.mean(self.predict(x).argmax(axis=1) == t))

    def gradient(self, x, t):
        """Backpropagation: forward once, then backward from the loss through every layer in reverse.

        Returns {"W1": dL/dW1, "b1": dL/db1, ...}, each of its parameter's shape."""
        self.loss(x, t)  # forward: every layer caches what its backward needs
        dout = self.last_layer.backward(1.0)  # dL/dL = 1
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        grads = {}
        for i, layer in enumerate((layer for layer in self.layers.values() if isinstance(layer, Affine)), start=1):
            grads[f"W{i}"], grads[f"b{i}"] = layer.dW, layer.db
        return grads

    def numerical_gradient(self, x, t, h=1e-5):
        """The same gradients by central differences, (L(w + h) - L(w - h)) / 2h for every entry of every
        parameter: two forward passes per entry. No chain rule, so it checks backprop (float64 only)."""
        return {key: numerical_gradient(lambda: self.loss(x, t), param, h) for key, param in self.params.items()}
