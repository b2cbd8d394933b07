"""A trained network as an ONNX graph, for every runtime that reads ONNX (ONNX Runtime in Python, C++, C#,
Java, a browser, a phone).

The graph takes what a CSV row holds -- 784 pixel values, float32, 0..255 -- and divides by 255 itself,
as bp-train does; it gives `probabilities` (N x 10) and `label` (N). Each of the lesson's layers becomes
the ONNX node that computes the same function in evaluation mode: Affine is Gemm (or MatMul without a
bias), the activations are Relu, Sigmoid and Tanh, Dropout is nothing (in evaluation it is the identity),
BatchNorm is its inference form folded into one multiply and one add (gamma / sqrt(var + eps), then
beta - mean * that), Convolution is Conv, Pooling is MaxPool, and the loss head is its output: Softmax, or
for the mse head the sigmoid outputs divided by their sum, as `predict --proba` writes them.

Layout: bp-train's images are NHWC, ONNX's Conv is NCHW. A CSV row is already C, H, W in order, so the
graph reshapes it straight to NCHW and stays there; the weights are permuted once, here, instead of
Transpose nodes running on every image: a filter (KH, KW, C, F) becomes (F, C, KH, KW), and the dense
layer after Flatten, whose rows bp-train orders (h, w, c), has them reordered to ONNX's (c, h, w).
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..errors import BPTrainError
from ..nn import conv, layers, losses

OPSET = 17


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise BPTrainError(
            "export --onnx needs the onnx package, which is not installed; from the bp-train "
            "checkout: .venv/bin/python -m pip install -e '.[onnx]'"
        ) from None
    return onnx


class GraphBuilder:
    """Nodes and weights, each named after the layer they come from."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.weights = onnx, [], []

    def constant(self, name: str, values, dtype=np.float32) -> str:
        self.weights.append(self.onnx.numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


def dense_rows_in_onnx_order(W: np.ndarray, maps: tuple[int, int, int]) -> np.ndarray:
    """The first dense layer after Flatten: bp-train flattens (h, w, c), ONNX (c, h, w)."""
    height, width, channels = maps
    return W.reshape(height, width, channels, -1).transpose(2, 0, 1, 3).reshape(W.shape)


def add_layer(graph: GraphBuilder, name: str, layer, x: str, state: dict) -> str:
    """The node(s) computing `layer` on tensor `x`; `state` carries the maps' shape (H, W, C) past Flatten."""
    if isinstance(layer, conv.ToImage):
        height, width, channels = layer.shape
        state["maps"] = (height, width, channels)
        return _reshape(graph, name, x, [-1, channels, height, width])  # a CSV row is C, H, W: NCHW as it is
    if isinstance(layer, conv.Convolution):
        kh, kw, _, filters = layer.W.shape
        inputs = [x, graph.constant(f"{name}.W", np.asarray(layer.W).transpose(3, 2, 0, 1))]
        if layer.b is not None:
            inputs.append(graph.constant(f"{name}.b", layer.b))
        height, width, _ = state["maps"]
        state["maps"] = (
            conv.output_size(height, kh, layer.stride, layer.pad),
            conv.output_size(width, kw, layer.stride, layer.pad),
            filters,
        )
        return graph.node("Conv", inputs, name, kernel_shape=[kh, kw], strides=[layer.stride] * 2, pads=[layer.pad] * 4)
    if isinstance(layer, conv.Pooling):
        height, width, channels = state["maps"]
        state["maps"] = (
            conv.output_size(height, layer.size, layer.stride, 0),
            conv.output_size(width, layer.size, layer.stride, 0),
            channels,
        )
        return graph.node("MaxPool", [x], name, kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2)
    if isinstance(layer, conv.Flatten):
        state["flattened"] = state["maps"]
        return graph.node("Flatten", [x], name, axis=1)
    if isinstance(layer, layers.BatchNorm):
        scale = np.asarray(layer.gamma) / np.sqrt(np.asarray(layer.running_var) + layer.eps)
        shift = np.asarray(layer.beta) - np.asarray(layer.running_mean) * scale
        shape = [1, -1, 1, 1] if isinstance(layer, conv.SpatialBatchNorm) else [1, -1]  # per channel, per feature
        scaled = graph.node("Mul", [x, graph.constant(f"{name}.scale", scale.reshape(shape))], f"{name}.scaled")
        return graph.node("Add", [scaled, graph.constant(f"{name}.shift", shift.reshape(shape))], name)
    if isinstance(layer, layers.Affine):
        W = np.asarray(layer.W)
        if "flattened" in state:
            W = dense_rows_in_onnx_order(W, state.pop("flattened"))
        if layer.b is None:
            return graph.node("MatMul", [x, graph.constant(f"{name}.W", W)], name)
        return graph.node("Gemm", [x, graph.constant(f"{name}.W", W), graph.constant(f"{name}.b", layer.b)], name)
    activation = {layers.ReLU: "Relu", layers.Sigmoid: "Sigmoid", layers.Tanh: "Tanh"}.get(type(layer))
    if activation:
        return graph.node(activation, [x], name)
    if isinstance(layer, layers.Dropout):
        return x  # evaluation mode: the identity
    raise BPTrainError(f"export --onnx: no ONNX form for the layer {name} ({type(layer).__name__})")


def _reshape(graph: GraphBuilder, name: str, x: str, shape: list[int]) -> str:
    return graph.node("Reshape", [x, graph.constant(f"{name}.shape", shape, np.int64)], name)


def add_head(graph: GraphBuilder, head, scores: str, prefix: str = "") -> str:
    """The probabilities, as the network's loss head defines them (`Network.probabilities`)."""
    if isinstance(head, losses.SigmoidWithMSE):
        outputs = graph.node("Sigmoid", [scores], f"{prefix}outputs")
        axes = graph.constant(f"{prefix}axes1", [1], np.int64)
        total = graph.node("ReduceSum", [outputs, axes], f"{prefix}total", keepdims=1)
        return graph.node("Div", [outputs, total], f"{prefix}probabilities")
    return graph.node("Softmax", [scores], f"{prefix}probabilities", axis=1)


def to_onnx(networks, config_name: str):
    """The ONNX model of a (float32 or float64) network, in evaluation mode, checked by onnx.checker; of a
    list of networks (an ensemble), one graph that runs each and averages their probabilities, as
    `predict` does (soft voting)."""
    onnx = require_onnx()
    networks = list(networks) if isinstance(networks, (list, tuple)) else [networks]
    network = networks[0]  # what the members share: input size, classes
    helper, graph = onnx.helper, GraphBuilder(onnx)
    scaled = graph.node("Mul", ["pixels", graph.constant("one_over_255", np.float32(1 / 255))], "scaled_pixels")
    each = []
    for number, member in enumerate(networks, start=1):
        prefix = f"member{number}." if len(networks) > 1 else ""
        x, state = scaled, {}
        for name, layer in member.layers.items():
            x = add_layer(graph, prefix + name, layer, x, state)
        each.append(add_head(graph, member.last_layer, x, prefix))
    probabilities = each[0]
    if len(each) > 1:
        total = graph.node("Sum", each, "members_summed")
        share = graph.constant("one_over_members", np.float32(1 / len(each)))
        probabilities = graph.node("Mul", [total, share], "probabilities")
    graph.node("ArgMax", [probabilities], "label", axis=1, keepdims=0)
    classes = network.sizes[-1]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            f"bp-train {config_name}",
            [helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, ["N", network.sizes[0]])],
            [
                helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["N", classes]),
                helper.make_tensor_value_info("label", onnx.TensorProto.INT64, ["N"]),
            ],
            initializer=graph.weights,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bp-train",
        producer_version=__version__,
        doc_string=f"bp-train {config_name}: input 'pixels' is N rows of {network.sizes[0]} float32 pixel values "
        "0..255 as a CSV row holds them (the graph divides by 255); outputs 'probabilities' and 'label'",
    )
    onnx.helper.set_model_props(
        model,
        {
            "classes": ",".join(map(str, range(classes))),
            "input_scaling": "pixels 0..255, divided by 255 in the graph",
            "bp_train_version": __version__,
            "config": config_name,
        },
    )
    model.ir_version = min(model.ir_version, 9)  # readable by runtimes a year or two old
    onnx.checker.check_model(model, full_check=True)
    return model
