"""`bp-train explain`: the textbooks' small computational graphs, worked by the project's own gates.

Each example is a list of steps, each one gate of `layers.py` (Mul, Add, Max, Copy, Sigmoid) applied to
named values. Forward runs the steps in order and records every value; backward starts from d(output) = 1
and runs them in reverse, each gate's own `backward` turning the gradient of its output into the
gradients of its inputs, the rule it applies printed beside every edge.
"""

from __future__ import annotations

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
    "apple": Graph("Buying 2 apples at 100 each, with a tax of 1.1",
                   {"apple": 100, "count": 2, "tax": 1.1},
                   [_s("mul", "apple count", "apple_price"), _s("mul", "apple_price tax", "price")]),
    "apple-orange": Graph("2 apples at 100 and 3 oranges at 150, with a tax of 1.1",
                          {"apple": 100, "apple_count": 2, "orange": 150, "orange_count": 3, "tax": 1.1},
                          [_s("mul", "apple apple_count", "apple_price"), _s("mul", "orange orange_count", "orange_price"),
                           _s("add", "apple_price orange_price", "all_price"), _s("mul", "all_price tax", "price")]),
    "xyz": Graph("f = x + y * z", {"x": -2, "y": 5, "z": -4},
                 [_s("mul", "y z", "q"), _s("add", "x q", "f")]),
    "sigmoid-chain": Graph("a flat chain: y = sigmoid(2 * (3 - (x + 1) * 0.5)), one gate at a time",
                           {"x": 3, "one": 1, "half": 0.5, "minus_one": -1, "three": 3, "two": 2},
                           [_s("add", "x one", "a"), _s("mul", "a half", "b"), _s("mul", "b minus_one", "c"),
                            _s("add", "c three", "d"), _s("mul", "d two", "e"), _s("sigmoid", "e", "y")]),
    "max-copy": Graph("f = max(x, y) * x: x branches into two uses", {"x": 3, "y": 2},
                      [_s("copy", "x", "x1 x2"), _s("max", "x1 y", "m"), _s("mul", "m x2", "f")]),
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
    lines += ["", "gradients of the inputs: " + ", ".join(
        f"d{final}/d{name} = {result['grads'].get(name, 0.0):.6g}" for name in graph.inputs)]
    return "\n".join(lines)


def draw_graph(graph: Graph, result: dict, path, plt):
    """Nodes left to right by depth; on every edge the value above it (black) and the gradient below (red)."""
    depth = {name: 0 for name in graph.inputs}
    for step in graph.steps:
        d = 1 + max(depth[name] for name in step.inputs)
        depth.update({name: d for name in step.outputs})
    columns: dict[int, list[str]] = {}
    for name, d in depth.items():
        columns.setdefault(d, []).append(name)
    position = {name: (d * 3.0, -i * 1.6) for d, names in columns.items() for i, name in enumerate(names)}
    figure, axes = plt.subplots(figsize=(3 + 2.4 * len(columns), 1.5 + 1.2 * max(map(len, columns.values()))))
    for source, target, value, grad, _ in result["edges"]:
        for out in target.split("/"):
            (x0, y0), (x1, y1) = position[source], position[out]
            axes.annotate("", xy=(x1 - 0.45, y1), xytext=(x0 + 0.45, y0), arrowprops={"arrowstyle": "->"})
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            axes.text(mx, my + 0.18, f"{value:.4g}", ha="center", fontsize=9)
            axes.text(mx, my - 0.32, f"{grad:.4g}", ha="center", fontsize=9, color="red")
    gate_of = {o: s.gate for s in graph.steps for o in s.outputs}
    for name, (x, y) in position.items():
        label = f"{gate_of[name]}\n{name}" if name in gate_of else name
        axes.text(x, y, label, ha="center", va="center", fontsize=9,
                  bbox={"boxstyle": "round", "facecolor": "#dde8f5" if name in gate_of else "white"})
    axes.set_title(f"{result['title']}\nvalues above the edges, gradients d{result['output']}/d(value) below (red)",
                   fontsize=10)
    axes.set_xlim(-1, 3.0 * max(columns) + 1)
    axes.set_ylim(-1.6 * max(map(len, columns.values())), 1)
    axes.axis("off")
    figure.tight_layout()
    return figure


# --- a real network, layer by layer -------------------------------------------------------------------------

def trace_network(network, x: np.ndarray, t: np.ndarray) -> list[dict]:
    """One forward and backward pass of `x` (a few rows) in training mode: per layer, its output's shape and
    statistics going forward, and the norm of the gradient arriving at it going backward."""
    network.set_flag("train", True)
    rows = []
    out = np.asarray(x, dtype=network.dtype)
    for name, layer in network.layers.items():
        out = layer.forward(out)
        rows.append({"layer": name, "shape": list(out.shape[1:]), "mean": float(out.mean()), "std": float(out.std()),
                     "min": float(out.min()), "max": float(out.max())})
    loss = network.last_layer.forward(out, t)
    dout = network.last_layer.backward(1.0)
    for row, layer in zip(reversed(rows), reversed(list(network.layers.values()))):
        row["grad_norm"] = float(np.linalg.norm(dout))
        dout = layer.backward(dout)
        if dout is None:
            break
    return [{**row, "loss": loss} for row in rows]


def format_trace(name: str, rows: list[dict]) -> str:
    lines = [f"{name}: one digit forward (outputs) and backward (gradient norm arriving at each layer)", "",
             f"{'layer':<14}{'output':<14}{'mean':>9}{'std':>9}{'min':>9}{'max':>9}   {'|dL/d output|':>14}"]
    for row in rows:
        grad = f"{row['grad_norm']:14.3e}" if "grad_norm" in row else f"{'(no gradient needed)':>14}"
        lines.append(f"{row['layer']:<14}{'x'.join(map(str, row['shape'])):<14}{row['mean']:9.3f}{row['std']:9.3f}"
                     f"{row['min']:9.3f}{row['max']:9.3f}   {grad}")
    lines.append(f"\nloss {rows[-1]['loss']:.4f}")
    return "\n".join(lines)


def draw_trace(name: str, rows: list[dict], plt):
    with_grad = [r for r in rows if "grad_norm" in r]
    figure, axes = plt.subplots(figsize=(8, 4))
    axes.bar([r["layer"] for r in with_grad], [r["grad_norm"] for r in with_grad])
    axes.set_yscale("log")
    axes.set(title=f"{name}: gradient norm arriving at each layer (input on the left)", ylabel="|dL/d output|")
    axes.tick_params(axis="x", rotation=60)
    figure.tight_layout()
    return figure
