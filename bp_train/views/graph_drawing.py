"""Drawing a computational graph as the textbooks do: inputs on the left, one box per gate, an arrow per
value, the value above each arrow (black) and its gradient below (red).

The layout is layered: a node's column is its depth, the longest path to it from an input. An edge
that skips columns is routed through a waypoint in every column it crosses, placed in that column's
order like a node, so that no edge runs through a box (the x -> f edge of f = x + y z would otherwise
cross the multiply). Within a column, nodes and waypoints are ordered by the mean height of what feeds
them, which untangles the textbooks' small graphs. A branch (the copy gate) carries each use's gradient on
its own arrow, and its box shows their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

COLUMN_WIDTH = 3.2
ROW_HEIGHT = 2.4


@dataclass
class Edge:
    name: str  # the value it carries: "x", "q", "x1"
    source: str  # node id: an input's name, or "step3"
    target: str
    value: float
    grad: float
    points: list  # the polyline, from the source's box to the target's, through waypoints


def nodes_and_edges(graph, result):
    """({node id: (column, label)}, [Edge without points]): one node per input and per step."""
    producer = {name: name for name in graph.inputs}
    nodes = {name: (0, name) for name in graph.inputs}
    carried = {(source, target): (value, grad) for source, target, value, grad, _ in result["edges"]}
    edges = []
    for i, step in enumerate(graph.steps):
        node = f"step{i}"
        column = 1 + max(nodes[producer[name]][0] for name in step.inputs)
        target = "/".join(step.outputs)
        label = f"{step.gate}\n{', '.join(step.outputs)}"
        if step.gate == "copy":  # the branches' gradients meet here: show their sum
            parts = [result["grads"].get(name, 0.0) for name in step.outputs]
            label += "\n" + " + ".join(f"{g:.4g}" for g in parts) + f" = {sum(parts):.4g}"
        if i == len(graph.steps) - 1:
            label += f"\n= {result['values'][step.outputs[-1]]:.4g}"
        nodes[node] = (column, label)
        for name in step.inputs:
            value, grad = carried[(name, target)]
            edges.append(Edge(name, producer[name], node, value, grad, []))
        producer.update({name: node for name in step.outputs})
    return nodes, edges


def layout(nodes, edges) -> dict:
    """{node or waypoint id: (x, y)}; each edge's `points` filled in."""
    columns: dict[int, list[str]] = {}
    for node, (column, _) in nodes.items():
        columns.setdefault(column, []).append(node)
    feeds: dict[str, list[str]] = {}
    for k, edge in enumerate(edges):
        chain = [edge.source]
        for column in range(nodes[edge.source][0] + 1, nodes[edge.target][0]):
            waypoint = f"edge{k}@{column}"
            columns[column].append(waypoint)
            chain.append(waypoint)
        chain.append(edge.target)
        edge.points = chain
        for before, after in zip(chain, chain[1:]):
            feeds.setdefault(after, []).append(before)
    position = {}
    for column in sorted(columns):
        members = columns[column]
        if column:  # order by where the inputs come from (barycentre), ties as they were listed
            members.sort(key=lambda m: sum(position[f][1] for f in feeds[m]) / len(feeds[m]), reverse=True)
        top = (len(members) - 1) * ROW_HEIGHT / 2
        for i, member in enumerate(members):
            position[member] = (column * COLUMN_WIDTH, top - i * ROW_HEIGHT)
    for edge in edges:
        edge.points = [position[p] for p in edge.points]
    return position


def draw_edge(axes, edge, artists: dict) -> None:
    """One edge: its line and arrow head, its value above and its gradient below (red)."""
    xs, ys = zip(*edge.points)
    (line,) = axes.plot(xs, ys, color="black", linewidth=1, zorder=1)
    artists["edges"].append((edge.source, edge.target, line))
    (x0, y0), (x1, y1) = edge.points[-2], edge.points[-1]
    axes.annotate(
        "",
        xy=(x1 - 0.55, y1 + (y0 - y1) * 0.55 / (x1 - x0)),
        xytext=(x1 - 0.6, y1 + (y0 - y1) * 0.6 / (x1 - x0)),
        arrowprops={"arrowstyle": "->"},
        zorder=2,
    )
    (x0, y0), (x1, y1) = edge.points[0], edge.points[1]
    mx, my = x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0)
    white = {"facecolor": "white", "edgecolor": "none", "pad": 0.5}
    artists["labels"].append(
        axes.text(
            mx,
            my + 0.28,
            f"{edge.name} = {edge.value:.4g}",
            ha="center",
            va="bottom",
            fontsize=9,
            zorder=2,
            bbox=white,
        )
    )
    artists["labels"].append(
        axes.text(
            mx, my - 0.28, f"{edge.grad:.4g}", ha="center", va="top", fontsize=9, color="red", zorder=2, bbox=white
        )
    )


def draw(graph, result, plt):
    """The figure; `figure.graph_artists` holds its node boxes, edge lines and labels (for the tests)."""
    nodes, edges = nodes_and_edges(graph, result)
    position = layout(nodes, edges)
    depth = max(column for column, _ in nodes.values())
    rows = max(sum(1 for p in position.values() if p[0] == x) for x in {p[0] for p in position.values()})
    figure, axes = plt.subplots(figsize=(2.2 + 2.3 * (depth + 1), 1.6 + 1.15 * rows))
    artists = {"nodes": {}, "edges": [], "labels": []}
    for node, (_, label) in nodes.items():
        x, y = position[node]
        gate = node.startswith("step")
        artists["nodes"][node] = axes.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=9,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#dde8f5" if gate else "white"},
        )
    for edge in edges:
        draw_edge(axes, edge, artists)
    xs, ys = zip(*position.values())
    axes.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    axes.set_ylim(min(ys) - 1.3, max(ys) + 1.3)
    axes.set_title(
        f"{result['title']}\nvalues above the arrows, gradients d{result['output']}/d(value) below (red)", fontsize=10
    )
    axes.axis("off")
    figure.tight_layout()
    figure.graph_artists = artists
    return figure
