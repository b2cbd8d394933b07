"""For the classroom: the textbook graphs worked by the project's gates (hand-computed values as oracles),
the chapters' other losses (gradchecked, planted bugs caught, the separate softmax + cross-entropy equal to
the fused gradient), runs overlaid on one plot, activation histograms, and training on the first N rows."""

import json

import numpy as np
import pytest
from conftest import ROOT, run_cli, synthetic_digits

from bp_train.config import build_network, load_config
from bp_train.errors import ConfigError
from bp_train.nn import fast_layers as F
from bp_train.nn import layers as L
from bp_train.nn import losses
from bp_train.nn.gradient import gradcheck


def explain(example, *args):
    result = run_cli("explain", example, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def grads_and_rules(figures):
    return figures["grads"], {(e["from"], e["to"]): e["rule"] for e in figures["edges"]}


def test_explain_apple_gives_the_textbook_values_and_names_each_rule():
    figures = explain("apple")
    assert figures["values"]["price"] == pytest.approx(220)
    grads, rules = grads_and_rules(figures)
    assert grads["apple"] == pytest.approx(2.2) and grads["count"] == pytest.approx(110)
    assert grads["tax"] == pytest.approx(200)
    assert rules[("apple", "apple_price")].startswith("mul: swaps the inputs")
    text = run_cli("explain", "apple").stdout
    assert "dprice/dapple = 2.2, dprice/dcount = 110, dprice/dtax = 200" in text


def test_explain_apple_orange_adds_two_branches():
    figures = explain("apple-orange")
    assert figures["values"]["price"] == pytest.approx(715)
    grads, rules = grads_and_rules(figures)
    assert (
        grads["apple"],
        grads["apple_count"],
        grads["orange"],
        grads["orange_count"],
        grads["tax"],
    ) == pytest.approx((2.2, 110, 3.3, 165, 650))
    assert rules[("apple_price", "all_price")] == "add: passes dout on"


def test_explain_xyz_gives_the_textbook_values():
    figures = explain("xyz")
    assert figures["values"]["f"] == -22
    grads, rules = grads_and_rules(figures)
    assert (grads["x"], grads["y"], grads["z"]) == (1, -4, 5)
    assert rules[("x", "f")] == "add: passes dout on" and rules[("y", "q")].startswith("mul: swaps the inputs")


def test_explain_sigmoid_chain_matches_the_closed_form_derivative():
    figures = explain("sigmoid-chain")
    x = 3.0
    e = 2 * (3 - (x + 1) * 0.5)
    y = 1 / (1 + np.exp(-e))
    assert figures["values"]["y"] == pytest.approx(y)
    assert figures["grads"]["x"] == pytest.approx(y * (1 - y) * 2 * -1 * 0.5)  # chain rule, by hand
    _, rules = grads_and_rules(figures)
    assert rules[("e", "y")] == "sigmoid: dout * y * (1 - y)"


def test_explain_max_copy_routes_to_the_larger_input_and_sums_the_branches():
    figures = explain("max-copy")
    grads, rules = grads_and_rules(figures)
    assert figures["values"]["f"] == 9 and grads["x"] == 6 and grads["y"] == 0  # f = x * x where x > y
    assert rules[("x1", "m")] == "max: routes to the larger input"
    assert rules[("x", "x1/x2")] == "copy: sums the branches"


def test_the_max_and_copy_gates_follow_their_rules():
    gate = L.Max()
    assert gate.forward(3.0, 5.0) == 5.0 and gate.backward(2.0) == (0.0, 2.0)
    assert L.Copy().backward(1.5, 2.0) == 3.5


def test_explain_png_draws_the_graph(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_cli("explain", "xyz", "--png", tmp_path / "xyz.png")
    assert result.exit_code == 0 and (tmp_path / "xyz.png").read_bytes()[:4] == b"\x89PNG"


def trace_norms(activation, init):
    hidden = ", ".join([f"{{size: 50, activation: {activation}}}"] * 5)
    figures = explain(
        "network",
        "--set",
        f"model.hidden=[{hidden}]",
        "--set",
        f"model.init={init}",
        "--set",
        "data.train=/nonexistent.csv",
    )
    return [row["grad_norm"] for row in figures["layers"] if row["layer"].startswith("Affine")]


def test_explain_network_shows_the_sigmoid_gradient_vanishing_and_relu_keeping_it():
    sigmoid = trace_norms("sigmoid", "xavier")
    assert all(a < b for a, b in zip(sigmoid, sigmoid[1:]))  # shrinking layer by layer toward the input
    assert sigmoid[0] < sigmoid[-1] / 50
    relu = trace_norms("relu", "he")
    assert relu[0] > relu[-1] / 5


def test_explain_refuses_network_options_for_a_small_graph():
    result = run_cli("explain", "apple", "--config", "configs/default.yaml")
    assert result.exit_code == 2 and "go with 'explain network'" in result.stderr


# --- losses ----------------------------------------------------------------------------------------------


def loss_check(loss, *overrides):
    config = load_config(
        None,
        [
            "data.train=/nonexistent.csv",
            f"model.loss={loss}",
            "model.hidden=[{size: 10, activation: tanh}, {size: 8}]",
            *overrides,
        ],
    )
    net = build_network(config, dtype="float64")
    rng = np.random.default_rng(0)
    return gradcheck(net, rng.random((20, 784)), rng.integers(0, 10, 20), batch=4)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "softmax_then_cross_entropy", "mse"])
def test_every_loss_passes_gradcheck(loss):
    result = loss_check(loss)
    assert result["passed"], result


def softmax_diagonal_only(self, dout):
    return self.y * (1 - self.y) * dout  # forgets the off-diagonal -y_i y_j terms


def cross_entropy_forgets_batch(self, dout=1.0):
    return -dout * self.t / (self.y + self.floor)


def mse_wrong_sign(self, dout=1.0):
    return dout * (self.t - self.y) / len(self.y)


@pytest.mark.parametrize(
    "loss, cls, method, plant",
    [
        ("softmax_then_cross_entropy", F.DeviceSoftmax, "backward", softmax_diagonal_only),
        ("softmax_then_cross_entropy", losses.CrossEntropy, "backward", cross_entropy_forgets_batch),
        ("mse", losses.MeanSquaredError, "backward", mse_wrong_sign),
    ],
)
def test_gradcheck_catches_a_planted_bug_in_each_loss(monkeypatch, loss, cls, method, plant):
    monkeypatch.setattr(cls, method, plant)
    result = loss_check(loss)
    assert not result["passed"] and "b3" in {r["param"] for r in result["params"] if not r["passed"]}


def test_separate_softmax_and_cross_entropy_give_the_fused_gradient():
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((6, 10)) * 3, rng.integers(0, 10, 6)
    fused, separate = L.SoftmaxWithLoss(), losses.SoftmaxThenCrossEntropy()
    assert separate.forward(x, t) == pytest.approx(fused.forward(x, t), abs=1e-12)
    np.testing.assert_allclose(separate.backward(), fused.backward(), rtol=0, atol=1e-12)


def test_mse_backward_is_the_classic_delta():
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((5, 10)), rng.integers(0, 10, 5)
    head = losses.SigmoidWithMSE()
    head.forward(x, t)
    y, hot = head.y, np.eye(10)[t]
    np.testing.assert_allclose(head.backward(), (y - hot) * y * (1 - y) / 5, atol=1e-15)
    probabilities = head.probabilities(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities.argmax(axis=1) == y.argmax(axis=1)).all()


@pytest.mark.parametrize("loss", ["softmax_then_cross_entropy", "mse"])
def test_each_loss_trains_evaluates_and_predicts_probabilities(loss, tiny_config, tmp_path, digits_csv):
    run = tmp_path / "run"
    # sigmoid outputs learn more slowly under squared error (y (1 - y) <= 1/4 scales every delta): plain SGD, lr 1
    optimizer = "{name: sgd, lr: 1.0}" if loss == "mse" else "{name: momentum, lr: 0.05}"
    result = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--set",
        f"model.loss={loss}",
        "--set",
        f"train.optimizer={optimizer}",
        "--out",
        run,
        "--quiet",
        "--json",
        "--epochs",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["val_accuracy"] > 0.8
    assert run_cli("evaluate", "--run", run).exit_code == 0
    result = run_cli(
        "predict",
        "--model",
        run / "model.npz",
        "--data",
        digits_csv,
        "--out",
        tmp_path / "s.csv",
        "--proba",
        tmp_path / "p.csv",
    )
    assert result.exit_code == 0, result.output
    table = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, atol=1e-4)


def test_an_unknown_loss_fails_when_the_config_is_read():
    with pytest.raises(ConfigError, match="'model.loss' is 'hinge'; expected one of softmax_cross_entropy"):
        load_config(None, ["model.loss=hinge"])


# --- experiments side by side ------------------------------------------------------------------------------


def test_train_rows_trains_on_the_first_rows_only(tiny_config, tmp_path):
    result = run_cli("fit", "--config", tiny_config, "--train-rows", "100", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.output
    figures = json.loads(run_cli("evaluate", "--run", tmp_path / "run", "--json").stdout)
    assert figures["rows"] == 20  # val_fraction 0.2 of the first 100 rows


def test_plot_overlays_several_runs_with_a_legend_entry_each(tiny_config, tmp_path):
    pytest.importorskip("matplotlib")
    from bp_train.views.plots import compare_runs, read_metrics

    runs = []
    for lr in ("0.01", "0.1"):
        run = tmp_path / f"lr-{lr}"
        assert (
            run_cli(
                "fit", "--config", tiny_config, "--set", f"train.optimizer.lr={lr}", "--out", run, "--quiet"
            ).exit_code
            == 0
        )
        runs.append(run)
    result = run_cli("plot", *runs, "--out", tmp_path / "compare.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt

    figure = compare_runs([(r.name, read_metrics(r)) for r in runs], plt)
    loss_axes, accuracy_axes = figure.axes
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ["lr-0.01", "lr-0.1", "validation", "training"]
    assert len(loss_axes.lines) == 4 and all(len(line.get_xdata()) == 3 for line in loss_axes.lines)
    # the legend covers no data: it lies below both panels
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0].get_window_extent(renderer)
    assert all(not legend.overlaps(axes.get_window_extent(renderer)) for axes in figure.axes)
    plt.close(figure)


def test_activation_histograms_have_one_panel_per_hidden_layer(tmp_path):
    pytest.importorskip("matplotlib")
    config = tmp_path / "five.yaml"
    config.write_text(
        "model: {hidden: [{size: 100, activation: sigmoid}, {size: 100, activation: sigmoid}, "
        "{size: 100, activation: sigmoid}], init: 1.0}\ndata: {train: /nonexistent.csv}\n"
    )
    result = run_cli("plot", "--activations", config, "--out", tmp_path / "act.png")
    assert result.exit_code == 0, result.output
    from bp_train.views.plots import hidden_activations

    net = build_network(load_config(config))
    layers = hidden_activations(net, synthetic_digits(50)[0] / 255.0)
    assert [name for name, _ in layers] == ["Sigmoid1", "Sigmoid2", "Sigmoid3"]
    saturated = np.mean((layers[-1][1] < 0.05) | (layers[-1][1] > 0.95))
    assert saturated > 0.5  # std 1.0 drives sigmoids to 0 and 1: the chapter-6 picture


def test_the_shipped_vanishing_gradient_demo_shows_it_beside_relu(tmp_path, digits_csv):
    """The README's demo: the sigmoid network's gradient 50x smaller at the input, the ReLU one's not."""
    result = run_cli(
        "explain",
        "network",
        "--config",
        ROOT / "configs" / "deep-sigmoid.yaml",
        "--config",
        ROOT / "configs" / "deep-relu.yaml",
        "--set",
        f"data.train={digits_csv}",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    sigmoid, relu = json.loads(result.stdout)["networks"]
    assert sigmoid["network"].startswith("deep-sigmoid") and sigmoid["vanishing_ratio"] > 50
    assert relu["network"].startswith("deep-relu") and relu["vanishing_ratio"] < 5
    text = run_cli(
        "explain",
        "network",
        "--config",
        ROOT / "configs" / "deep-sigmoid.yaml",
        "--config",
        ROOT / "configs" / "deep-relu.yaml",
        "--set",
        f"data.train={digits_csv}",
    ).stdout
    assert "the gradient vanishes on its way" in text and "keeps its size" in text


def boxes_and_segments(figure):
    """Display-space boxes of the nodes and labels, and the edges' segments, from matplotlib's renderer."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    artists = figure.graph_artists
    nodes = {name: text.get_bbox_patch().get_window_extent(renderer) for name, text in artists["nodes"].items()}
    labels = [text.get_bbox_patch().get_window_extent(renderer) for text in artists["labels"]]
    edges = []
    for source, target, line in artists["edges"]:
        points = line.get_transform().transform(line.get_xydata())
        edges.append((source, target, list(zip(points[:-1], points[1:]))))
    return nodes, labels, edges


def crosses(segment, box, margin=1.0):
    (x0, y0), (x1, y1) = segment
    samples = np.linspace(0, 1, 400)
    xs, ys = x0 + samples * (x1 - x0), y0 + samples * (y1 - y0)
    return bool(
        np.any((xs > box.x0 + margin) & (xs < box.x1 - margin) & (ys > box.y0 + margin) & (ys < box.y1 - margin))
    )


@pytest.mark.parametrize("example", ["apple", "apple-orange", "xyz", "sigmoid-chain", "max-copy"])
def test_graph_drawings_cannot_mislead_no_edge_through_a_box_no_label_on_another(example):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bp_train.views import explain as E

    graph = E.EXAMPLES[example]
    result = E.run(graph)
    figure = E.draw_graph(graph, result, None, plt)
    nodes, labels, edges = boxes_and_segments(figure)
    for source, target, segments in edges:
        for name, box in nodes.items():
            if name not in (source, target):
                assert not any(crosses(s, box) for s in segments), f"the edge {source} -> {target} runs through {name}"
    everything = labels + list(nodes.values())
    for i, a in enumerate(labels):
        for b in everything[i + 1 :]:
            assert not a.overlaps(b), f"{example}: two labels overlap"
    # every edge labelled once: a value and a gradient per edge, no more
    assert len(labels) == 2 * len(edges) == 2 * sum(len(step.inputs) for step in graph.steps)
    plt.close(figure)


def test_a_branch_shows_each_uses_gradient_on_its_own_edge_and_their_sum_at_the_copy():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bp_train.views import explain as E

    graph = E.EXAMPLES["max-copy"]
    figure = E.draw_graph(graph, E.run(graph), None, plt)
    texts = [t.get_text() for t in figure.graph_artists["labels"]]
    assert texts.count("x = 3") == 1 and "x1 = 3" in texts and "x2 = 3" in texts
    assert texts.count("3") == 3 and texts.count("6") == 1  # x1's and x2's 3 (and m's), x's 6 = their sum
    assert "3 + 3 = 6" in figure.graph_artists["nodes"]["step0"].get_text()
    plt.close(figure)
