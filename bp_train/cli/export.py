"""`bp-train export`: a trained model in a format other runtimes read."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .common import BadInput, refuse_overwriting


@click.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(),
    help="A model.npz written by fit, a run folder, or an ensemble folder (one graph averaging its members).",
)
@click.option("--onnx", "out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--overwrite", is_flag=True, help="Replace the --onnx file if it exists.")
def export(model_path, out, overwrite):
    """Write a trained network as an ONNX model, which ONNX Runtime (Python, C++, C#, Java, the browser)
    and other runtimes read: input 'pixels' (N x 784 float32, 0..255, as CSV rows hold them), outputs
    'probabilities' (N x 10) and 'label' (N). An ensemble folder becomes one graph that runs every member
    and averages their probabilities, as predict does (without --tta's shifted views). Needs the onnx extra.

    \b
    Examples:
      bp-train export --model runs/cnn/model.npz --onnx cnn.onnx
      bp-train export --model runs/fast-cnn-ensemble --onnx ensemble.onnx
    """
    from ..export.onnx import require_onnx, to_onnx
    from ..files.store import atomic_path
    from ..training.voting import load_ensemble

    require_onnx()
    model = load_ensemble([model_path])
    refuse_overwriting({"--onnx": out}, {f"model file {m.file} (--model)": str(m.file) for m in model.members})
    target = Path(out)
    if os.path.lexists(target):
        if not target.is_file() or target.is_symlink():
            raise BadInput(f"--onnx {out} exists and is not a regular file; it is left as it is")
        if not overwrite:
            raise BadInput(f"--onnx {out} exists; give --overwrite to replace it")
    network, config = model.network, model.members[0].config
    graph = to_onnx([m.network for m in model.members], config.name)
    with atomic_path(target) as tmp:
        tmp.write_bytes(graph.SerializeToString())
    members = f", the average of {len(model.members)} members" if len(model.members) > 1 else ""
    click.echo(
        f"wrote {out}: {len(graph.graph.node)} nodes, opset {graph.opset_import[0].version}; input 'pixels' "
        f"(N x {network.sizes[0]}, 0..255), outputs 'probabilities'{members} and 'label'"
    )
