"""`bp-train serve`: a page to draw a digit on, read live by a trained model."""

from __future__ import annotations

import click

from .common import BadInput, device_option, threads_option


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="A model.npz written by fit.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default lets only this machine in (0.0.0.0: every network).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free one, said at start).")
@click.option("--log", "log_requests", is_flag=True, help="Print a line per request.")
@device_option
@threads_option
def serve(model_path, host, port, log_requests, device):
    """Serve a local web page where you draw a digit with the mouse or a finger (or drop a photo) and see,
    as you draw, the digit the network reads, its ten probabilities, the 28x28 it sees and which pixels
    pushed it to its answer. `POST /api/predict` with a picture as the body answers the same as JSON.

    \b
    Example:
      bp-train serve --model runs/cnn/model.npz     then open http://127.0.0.1:8000/
    """
    from ..files.model import load_model
    from ..serve.server import serve as run_server
    from ..training.recognize import check_fits

    network, _, _ = load_model(model_path, device=device or "cpu")
    check_fits(network, model_path)
    try:
        run_server(network, host, port, announce=lambda line: click.echo(line, err=True), quiet=not log_requests)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
