"""`bp-train export`: a trained model in a format other runtimes read."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .common import BadInput, refuse_overwriting


@click.command()
@click.option(
    "--model", "model_path", required=True, type=click.Path(dir_okay=False), help="A model.npz written by fit."
)
@click.option("--onnx", "out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--overwrite", is_flag=True, help="Replace the --onnx file if it exists.")
def export(model_path, out, overwrite):
    """Write a trained network as an ONNX model, which ONNX Runtime (Python, C++, C#, Java, the browser)
    and other runtimes read: input 'pixels' (N x 784 float32, 0..255, as CSV rows hold them), outputs
    'probabilities' (N x 10) and 'label' (N). Needs the onnx extra.

    \b
    Example:
      bp-train export --model runs/cnn/model.npz --onnx cnn.onnx
    """
    from ..export.onnx import require_onnx, to_onnx
    from ..files.model import load_model
    from ..files.store import atomic_path

    require_onnx()
    refuse_overwriting({"--onnx": out}, {"model file (--model)": model_path})
    target = Path(out)
    if os.path.lexists(target):
        if not target.is_file() or target.is_symlink():
            raise BadInput(f"--onnx {out} exists and is not a regular file; it is left as it is")
        if not overwrite:
            raise BadInput(f"--onnx {out} exists; give --overwrite to replace it")
    network, config, _ = load_model(model_path)
    model = to_onnx(network, config.name)
    with atomic_path(target) as tmp:
        tmp.write_bytes(model.SerializeToString())
    click.echo(
        f"wrote {out}: {len(model.graph.node)} nodes, opset {model.opset_import[0].version}; input 'pixels' "
        f"(N x {network.sizes[0]}, 0..255), outputs 'probabilities' and 'label'"
    )
