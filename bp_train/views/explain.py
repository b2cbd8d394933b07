"""`bp-train explain`: the textbooks' small computational graphs, worked by the project's own gates.

Each example is a list of steps, each one gate of `layers.py` (Mul, Add, Max, Copy, Sigmoid) applied to
named values. Forward runs the steps in order and records every value; backward starts from d(output) = 1
and runs them in reverse, each gate's own `backward` turning the gradient of its output into the
gradients of its inputs, the rule it applies printed beside every edge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..nn import layers as L

RULES = {
    "mul": "mul: swaps the inputs (dout times the other input)",
    "add": "add: passes dout on",
    "max": "max: routes to the larger input",
    "copy": "copy: sums the branches",
    "sigmoid": "sigmoid: dout * y * (1 - y)",
}
GATES = {"mul": L.Mul, "add": L.Add, "max": L.Max, "copy": L.Copy, "sigmoid": L.Sigmoid}


@dataclass
class Step:
    gate: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Graph:
    title: str
    inputs: dict[str, float]
    steps: list[Step]


def _s(gate, inputs, outputs):
    return Step(gate, tuple(inputs.split()), tuple(outputs.split()))


EXAMPLES = {
    "apple": Graph(
        "Buying 2 apples at 100 each, with a tax of 1.1",
        {"apple": 100, "count": 2, "tax": 1.1},
        [_s("mul", "apple count", "apple_price"), _s("mul", "apple_price tax", "price")],
    ),
    "apple-orange": Graph(
        "2 apples at 100 and 3 oranges at 150, with a tax of 1.1",
        {"apple": 100, "apple_count": 2, "orange": 150, "orange_count": 3, "tax": 1.1},
        [
            _s("mul", "apple apple_count", "apple_price"),
            _s("mul", "orange orange_count", "orange_price"),
            _s("add", "apple_price orange_price", "all_price"),
            _s("mul", "all_price tax", "price"),
        ],
    ),
    "xyz": Graph("f = x + y * z", {"x": -2, "y": 5, "z": -4}, [_s("mul", "y z", "q"), _s("add", "x q", "f")]),
    "sigmoid-chain": Graph(
        "a flat chain: y = sigmoid(2 * (3 - (x + 1) * 0.5)), one gate at a time",
        {"x": 3, "one": 1, "half": 0.5, "minus_one": -1, "three": 3, "two": 2},
        [
            _s("add", "x one", "a"),
            _s("mul", "a half", "b"),
            _s("mul", "b minus_one", "c"),
            _s("add", "c three", "d"),
            _s("mul", "d two", "e"),
            _s("sigmoid", "e", "y"),
        ],
    ),
    "max-copy": Graph(
        "f = max(x, y) * x: x branches into two uses",
        {"x": 3, "y": 2},
        [_s("copy", "x", "x1 x2"), _s("max", "x1 y", "m"), _s("mul", "m x2", "f")],
    ),
}


def run(graph: Graph) -> dict:
    """Forward and backward through the graph: {"values": {...}, "grads": {...}, "edges": [...]}, where each
    edge is (from value, to step output, value, gradient, rule)."""
    values = dict(graph.inputs)
    gates = []
    for step in graph.steps:
        gate = GATES[step.gate]()
        result = gate.forward(*(values[name] for name in step.inputs))
        results = result if step.gate == "copy" else (result,)
        values.update({name: float(v) for name, v in zip(step.outputs, results)})
        gates.append(gate)
    final = graph.steps[-1].outputs[-1]
    grads = {final: 1.0}
    edges = []
    for step, gate in zip(reversed(graph.steps), reversed(gates)):
        upstream = [grads.get(name, 0.0) for name in step.outputs]
        downstream = gate.backward(*upstream)
        downstream = downstream if isinstance(downstream, tuple) else (downstream,)
        for name, grad in zip(step.inputs, downstream):
            grads[name] = grads.get(name, 0.0) + float(grad)
            edges.append((name, "/".join(step.outputs), values[name], float(grad), RULES[step.gate]))
    return {"title": graph.title, "output": final, "values": values, "grads": grads, "edges": edges[::-1]}


def format_graph(graph: Graph, result: dict) -> str:
    final = result["output"]
    lines = [result["title"], "", "forward: every node's value"]
    for name, value in graph.inputs.items():
        lines.append(f"  {name:<14} = {value:g}")
    for step in graph.steps:
        value = ", ".join(f"{result['values'][o]:.6g}" for o in step.outputs)
        lines.append(f"  {', '.join(step.outputs):<14} = {step.gate}({', '.join(step.inputs)}) = {value}")
    lines += ["", f"backward: the gradient d{final}/d(value) on every edge, from d{final}/d{final} = 1"]
    for source, target, value, grad, rule in reversed(result["edges"]):
        lines.append(f"  {source:>12} -> {target:<14} value {value:<10.6g} gradient {grad:<10.6g} {rule}")
    lines += [
        "",
        "gradients of the inputs: "
        + ", ".join(f"d{final}/d{name} = {result['grads'].get(name, 0.0):.6g}" for name in graph.inputs),
    ]
    return "\n".join(lines)


def draw_graph(graph: Graph, result: dict, path, plt):
    """The graph as the textbooks draw it: see graph_drawing.py."""
    from .graph_drawing import draw

    return draw(graph, result, plt)


# --- a real network, layer by layer -------------------------------------------------------------------------


def trace_network(network, x: np.ndarray, t: np.ndarray, train: bool = True) -> list[dict]:
    """One forward and backward pass of `x` (a few rows) through the network's own layers: per layer, its
    output's shape and statistics going forward, and the norm of the gradient arriving at it, dL/d(its
    output), going backward. In training mode (dropout drawing masks) by default; `train=False` traces
    the network as it reads a digit (no dropout, BatchNorm's running averages)."""
    network.set_flag("train", train)
    rows = []
    out = np.asarray(x, dtype=network.dtype)
    for name, layer in network.layers.items():
        out = layer.forward(out)
        rows.append(
            {
                "layer": name,
                "shape": list(out.shape[1:]),
                "mean": float(out.mean()),
                "std": float(out.std()),
                "min": float(out.min()),
                "max": float(out.max()),
            }
        )
    loss = network.last_layer.forward(out, t)
    dout = network.last_layer.backward(1.0)
    for row, layer in zip(reversed(rows), reversed(list(network.layers.values()))):
        row["grad_norm"] = float(np.linalg.norm(dout))
        dout = layer.backward(dout)
        if dout is None:
            break
    return [{**row, "loss": loss} for row in rows]


def format_trace(name: str, rows: list[dict]) -> str:
    lines = [
        f"{name}: one digit forward (outputs) and backward (gradient norm arriving at each layer)",
        "",
        f"{'layer':<14}{'output':<14}{'mean':>9}{'std':>9}{'min':>9}{'max':>9}   {'|dL/d output|':>14}",
    ]
    for row in rows:
        grad = f"{row['grad_norm']:14.3e}" if "grad_norm" in row else f"{'(no gradient needed)':>14}"
        lines.append(
            f"{row['layer']:<14}{'x'.join(map(str, row['shape'])):<14}{row['mean']:9.3f}{row['std']:9.3f}"
            f"{row['min']:9.3f}{row['max']:9.3f}   {grad}"
        )
    lines.append(f"\nloss {rows[-1]['loss']:.4f}")
    return "\n".join(lines)


def vanishing_ratio(rows: list[dict]) -> float:
    """How many times smaller the gradient arriving at the first layer is than at the last one: the
    vanishing gradient in one number (1 means none, 1000 means the first layer barely learns)."""
    norms = [r["grad_norm"] for r in rows if r["layer"].startswith(("Affine", "Convolution")) and "grad_norm" in r]
    return float(norms[-1] / max(norms[0], 1e-300)) if norms else float("nan")


def format_ratios(traces: list[dict]) -> str:
    lines = ["gradient norm arriving at the output layer / at the first layer (the vanishing gradient):"]
    for trace in traces:
        ratio = trace["vanishing_ratio"]
        verdict = "vanishes" if ratio > 50 else "keeps its size" if ratio < 5 else "shrinks"
        lines.append(f"  {trace['network']}: {ratio:,.1f}x -- the gradient {verdict} on its way to the input")
    return "\n".join(lines)


def draw_traces(traces: list[dict], plt):
    """Each network's gradient norm arriving at each layer, side by side on one log scale (input left)."""
    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(traces)
    for i, trace in enumerate(traces):
        with_grad = [r for r in trace["layers"] if "grad_norm" in r]
        positions = [j + (i - (len(traces) - 1) / 2) * width for j in range(len(with_grad))]
        axes.bar(
            positions,
            [r["grad_norm"] for r in with_grad],
            width,
            color=f"C{i}",
            label=f"{trace['network'].split(' (')[0]}: {trace['vanishing_ratio']:,.0f}x smaller at the input",
        )
        if i == 0:  # the networks' activations differ in name (Sigmoid3, Relu3): the place is what counts
            names = [re.sub(r"^(Relu|Sigmoid|Tanh)(\d+)$", r"activation\2", r["layer"]) for r in with_grad]
            axes.set_xticks(range(len(with_grad)), names, rotation=60)
    axes.set_yscale("log")
    axes.set(title="gradient norm arriving at each layer, one digit (input on the left)", ylabel="|dL/d output|")
    figure.legend(*axes.get_legend_handles_labels(), loc="lower center", fontsize=8)  # below the axes: covers no bar
    figure.tight_layout(rect=(0, 0.06 * len(traces) + 0.02, 1, 1))
    return figure


def draw_network_traces(traces: list[dict], walks: list, networks: list[tuple], plt):
    """A person's digit through one network: every layer's forward and backward pictures on one sheet
    (step_through.draw_walk); otherwise the gradient norms of draw_traces."""
    if len(traces) == 1 and walks[0] is not None:
        from .step_through import draw_walk

        return draw_walk(walks[0], networks[0][0], traces[0]["network"], plt)
    return draw_traces(traces, plt)


# --- a person's own digit, or a row of a config's data, through a network ---------------------------------


def own_digit_line(trace: dict) -> str:
    read = int(np.argmax(trace["probabilities"]))
    return (
        f"read as {read} (probability {trace['probabilities'][read]:.3f}); the loss -log p[{trace['label']}] "
        f"= {trace['loss']:.4f} is what backward starts from"
    )


def own_digit(image, networks):
    """A person's picture, prepared as `predict --image` prepares it: 784 pixels in 0..1."""
    from ..data.images import prepare
    from ..training.recognize import check_fits

    for network, config in networks:
        check_fits(network, config.name)
    from ..data.digits import to_float

    return to_float(prepare(image).pixels.reshape(1, -1).round().astype(np.uint8), np.float64)


def data_row(config, row: int):
    """Row `row` of the config's training data (0 is the first after the header): (x, label, description)."""
    from ..data.digits import check_labels, load_digits, to_float
    from ..errors import DataError

    digits = load_digits(config.data.train, require_labels=True)
    if not 0 <= row < len(digits.images):
        raise DataError(f"--row {row}: {config.data.train} has rows 0 to {len(digits.images) - 1}")
    check_labels(digits.labels[row : row + 1], config.model.output_size, str(config.data.train))
    x = to_float(digits.images[row : row + 1], np.float64)
    return x, digits.labels[row : row + 1].astype(np.intp), f"row {row} of {config.data.train}"


def trace_digit(network, config, picture=None, label=None, row=None) -> dict:
    """One digit through the network, forward and back: trace_network's rows, the network's name and its
    vanishing ratio. Without `picture`, a row of the config's training data in training mode (row `row`,
    or one drawn by the seed); with it, the person's digit as the network reads it (evaluation mode), the
    loss taken for `label` (default: the network's answer), and the input, label, loss and probabilities
    added."""
    from ..data.digits import sample_rows

    if picture is None:
        if row is not None:
            x, t, described = data_row(config, row)
        else:
            x, t, described = sample_rows(config.data.train, 1, config.train.seed, classes=config.model.output_size)
        rows = trace_network(network, x, t)
        return {
            "network": f"{config.name} {config.describe_layers()} ({described})",
            "layers": rows,
            "vanishing_ratio": vanishing_ratio(rows),
        }
    from .step_through import walk

    walked = walk(network, picture, label)  # the page's step-through computes the same walk
    rows = [
        {
            "layer": step.name,
            "shape": list(step.output.shape),
            "mean": float(step.output.mean()),
            "std": float(step.output.std()),
            "min": float(step.output.min()),
            "max": float(step.output.max()),
            "grad_norm": float(np.linalg.norm(step.grad)),
            "loss": walked.loss,
        }
        for step in walked.layers
    ]
    return {
        "network": f"{config.name} {config.describe_layers()} (your digit, for the label {walked.label})",
        "layers": rows,
        "vanishing_ratio": vanishing_ratio(rows),
        "input": [round(float(v), 6) for v in picture[0]],
        "label": walked.label,
        "loss": walked.loss,
        "probabilities": [round(float(p), 6) for p in walked.probabilities],
        "walk": walked,
    }
