"""Models that leave bp-train: a trained network as an ONNX graph (onnx.py)."""
