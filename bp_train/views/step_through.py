"""One digit's walk through a network, kept layer by layer: what the page's step-through (`bp-train serve`)
and `explain network --png` show.

One forward pass and one backward pass of the network's own layers -- the lesson's classes with training's
speed-ups (nn/fast_layers.py), tested equal to them -- in evaluation mode, the network as it reads a
digit: no dropout, BatchNorm with its running averages. On the way forward every layer's output is kept;
on the way back, the gradient arriving at it, dL/d(its output), then what the layers cached for their own
backward (a ReLU's mask) and their parameters' gradients. Nothing is recomputed for the pictures.

The loss is this one digit's cross-entropy for the chosen label, -log p[label]: the term that depends on
the digit. Weight decay's penalty, a function of the weights alone, is left out.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from ..nn.backend import to_host

# The rule of each kind of layer in one line, forward and backward: the lesson's docstrings, shortened.
RULES = {
    "ToImage": ("the 784 pixels as a 28x28 picture", "the gradient laid back out as 784 values"),
    "Convolution": (
        "out = x * W + b: every filter slid over the input, one map per filter",
        "dx = dout spread back through each filter (col2im); dW = patches^T . dout",
    ),
    "BatchNorm": (
        "(x - running mean) / sqrt(running var + eps) * gamma + beta",
        "dx = dout * gamma / sqrt(running var + eps): reading a digit, the averages are constants",
    ),
    "Pooling": ("the largest of each {size}x{size} window", "each gradient goes to its window's winner, 0 to the rest"),
    "Relu": ("max(0, x)", "passes where the input was > 0 (white in the mask), 0 elsewhere"),
    "Sigmoid": ("y = 1 / (1 + exp(-x))", "dx = dout * y * (1 - y)"),
    "Tanh": ("y = tanh(x)", "dx = dout * (1 - y^2)"),
    "Dropout": (
        "reading a digit: x unchanged (training drops units at random)",
        "passes dout on unchanged (nothing was dropped)",
    ),
    "Flatten": ("the maps laid out as one row of numbers", "the row of gradients folded back into maps"),
    "Affine": ("out = x . W + b", "dx = dout . W^T;  dW = x^T . dout;  db = dout"),
}


def kind_of(name: str) -> str:
    """'Convolution2' -> 'Convolution'."""
    return re.sub(r"\d+$", "", name)


@dataclass
class LayerStep:
    name: str
    output: np.ndarray  # this digit's output: (C, H, W) maps, or (units,)
    grad: np.ndarray  # dL/d(output), the same shape
    mask: np.ndarray | None = None  # a ReLU's mask (input > 0): where backward lets the gradient through
    param_grads: dict[str, np.ndarray] = field(default_factory=dict)  # "W1" -> dL/dW1, shaped as W1

    @property
    def kind(self) -> str:
        return kind_of(self.name)

    def rules(self, layer) -> tuple[str, str]:
        forward, backward = RULES.get(self.kind, ("", ""))
        return forward.format(size=getattr(layer, "size", 2)), backward

    def describe(self, layer) -> dict:
        forward, backward = self.rules(layer)
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.output.shape),
            "maps": int(self.output.shape[0]) if self.output.ndim == 3 else None,
            "forward_rule": forward,
            "backward_rule": backward,
            "params": list(self.param_grads),
        }


@dataclass
class Walk:
    input: np.ndarray  # the 784 pixels, 0..1
    label: int  # the label the loss is taken for
    probabilities: np.ndarray  # (classes,) float64
    loss: float  # -log p[label]
    input_grad: np.ndarray  # dL/d(pixel), 784 values
    layers: list[LayerStep]

    @property
    def read(self) -> int:
        return int(np.argmax(self.probabilities))

    def param_grads(self) -> dict[str, np.ndarray]:
        return {key: grad for step in self.layers for key, grad in step.param_grads.items()}


def as_maps(values: np.ndarray) -> np.ndarray:
    """One digit's (H, W, C) maps -- the lesson's NHWC layout -- as (C, H, W): a picture per channel."""
    return values.transpose(2, 0, 1) if values.ndim == 3 else values


def walk(network, x: np.ndarray, label: int | None = None) -> Walk:
    """`x`: one digit, (1, 784). The loss is taken for `label`, by default the network's own answer."""
    network.set_flag("train", False)
    names, layers = list(network.layers), list(network.layers.values())
    x = np.asarray(x, dtype=network.dtype).reshape(1, -1)
    outputs, out = [], x
    for layer in layers:
        out = layer.forward(out)
        outputs.append(as_maps(to_host(out)[0]).copy())
    probabilities = to_host(network.probabilities(out))[0].astype(np.float64)
    label = int(np.argmax(probabilities)) if label is None else label
    loss = float(network.last_layer.forward(out, np.array([label])))
    dout = network.last_layer.backward(1.0)
    # The first layer skips dL/dx in training (the data needs none); here it is the saliency map.
    first = next((layer for layer in layers if hasattr(layer, "need_dx")), None)
    if first is not None:
        first.need_dx = True
    try:
        grads = [None] * len(layers)
        for i in reversed(range(len(layers))):
            grads[i] = as_maps(to_host(dout)[0]).copy()
            dout = layers[i].backward(dout)
    finally:
        if first is not None:
            first.need_dx = False
    steps = []
    for name, layer, output, grad in zip(names, layers, outputs, grads):
        mask = getattr(layer, "mask", None) if kind_of(name) == "Relu" else None
        step = LayerStep(name, output, grad, None if mask is None else as_maps(to_host(mask)[0]).copy())
        for param, computed in layer.grads().items() if name in network.keys else ():
            step.param_grads[network.keys[name][param]] = to_host(computed).copy()
        steps.append(step)
    return Walk(x[0].astype(np.float64), label, probabilities, loss, to_host(dout)[0].astype(np.float64), steps)


def learn(network, walked: Walk, rate: float) -> None:
    """One step of plain SGD on this digit's loss: every parameter moves by -rate * its gradient."""
    for key, grad in walked.param_grads().items():
        network.params[key] -= rate * grad.astype(network.dtype)


def check_sample(network64, x: np.ndarray, label: int, per_param: int = 3, steps=(1e-5, 1e-7)) -> dict:
    """Backprop's gradients of this digit's loss against central differences, (L(w + h) - L(w - h)) / 2h,
    on a float64 copy of the network: the `per_param` largest entries of every parameter's gradient
    (where an error would show, not entries that are 0 on both sides), with their relative error
    |a - n| / max(|a| + |n|, 1e-12). A step that moves a ReLU or a max pool across its kink measures a
    different piece of the function: the entry is measured again with the next, smaller h, and left out
    of the largest error (marked "crossed") if every h crosses one."""
    analytic = walk(network64, x, label).param_grads()
    t = np.array([label])

    def loss_and_decisions() -> tuple[float, bytes]:
        scores = network64.predict(x)
        return float(network64.last_layer.forward(scores, t)), network64.decisions()

    _, decisions = loss_and_decisions()
    entries = []
    for key, grad in analytic.items():
        param = network64.params[key]
        for flat in np.argsort(np.abs(grad).ravel())[::-1][:per_param]:
            index = np.unravel_index(flat, grad.shape)
            kept = float(param[index])
            for h in steps:
                param[index] = kept + h
                plus, went_plus = loss_and_decisions()
                param[index] = kept - h
                minus, went_minus = loss_and_decisions()
                param[index] = kept
                crossed = went_plus != decisions or went_minus != decisions
                if not crossed:
                    break
            numeric, backprop = (plus - minus) / (2 * h), float(grad[index])
            error = abs(backprop - numeric) / max(abs(backprop) + abs(numeric), 1e-12)
            entries.append(
                {
                    "param": key,
                    "index": [int(i) for i in index],
                    "backprop": backprop,
                    "numeric": numeric,
                    "h": h,
                    "relative_error": error,
                    "crossed": crossed,
                }
            )
    measured = [e["relative_error"] for e in entries if not e["crossed"]]
    return {"entries": entries, "max_relative_error": max(measured, default=float("nan"))}


def mosaic(values: np.ndarray) -> np.ndarray:
    """(C, H, W) maps tiled into one picture (a blank line between them), or (n,) values as a band of rows
    about four times as wide as it is tall."""
    if values.ndim == 1:
        columns = min(len(values), max(32, int(np.ceil(np.sqrt(4 * len(values))))))
        rows = -(-len(values) // columns)
        return np.pad(values, (0, rows * columns - len(values)), constant_values=np.nan).reshape(rows, columns)
    count, height, width = values.shape
    columns = int(np.ceil(np.sqrt(count * height / width)))
    rows = -(-count // columns)
    sheet = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for i, picture in enumerate(values):
        top, left = (i // columns) * (height + 1), (i % columns) * (width + 1)
        sheet[top : top + height, left : left + width] = picture
    return sheet


def draw_walk(walked: Walk, network, title: str, plt):
    """Every layer on one sheet, one row each: its output going forward (left; grey, white at 0, when it
    has no negative values, else the diverging scale) and the gradient arriving at it going backward
    (right; blue below 0, white at 0, red above), each with its colour key."""
    figure, axes = plt.subplots(len(walked.layers), 2, figsize=(9, 2.3 * len(walked.layers)), squeeze=False)
    for row, step in zip(axes, walked.layers):
        forward_rule, backward_rule = step.rules(network.layers[step.name])
        for axis, values, heading in (
            (row[0], step.output, f"{step.name} forward: {forward_rule}"),
            (row[1], step.grad, f"{step.name} backward: dL/d(output) arriving; local rule: {backward_rule}"),
        ):
            top = float(np.abs(values).max()) or 1.0
            grey = values is step.output and values.min() >= 0
            shown = axis.imshow(
                mosaic(values.astype(np.float64)),
                cmap="gray_r" if grey else "RdBu_r",
                vmin=0 if grey else -top,
                vmax=top,
                interpolation="nearest",
            )
            shape = "x".join(map(str, values.shape))
            axis.set_title(textwrap.fill(f"{heading} ({shape})", 62), fontsize=7, loc="left")
            axis.set_xticks(range(10) if values.shape == (10,) else [])  # ten scores: the digits
            axis.set_yticks([])
            figure.colorbar(shown, ax=axis, fraction=0.03, pad=0.01).ax.tick_params(labelsize=6)
    read = walked.read
    figure.suptitle(
        f"{title}: read as {read} (p = {walked.probabilities[read]:.3f}); backward from the loss "
        f"-log p[{walked.label}] = {walked.loss:.4f}",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.985))
    return figure
