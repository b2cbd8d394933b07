"""`bp-train serve`: a page to draw a digit on, read live by a trained model."""

from __future__ import annotations

import click

from .common import BadInput, device_option, models_option, threads_option


@click.command()
@models_option(required=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; the default lets only this machine in (0.0.0.0: every network).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one, said at start).",
)
@click.option("--log", "log_requests", is_flag=True, help="Print a line per request.")
@device_option
@threads_option
def serve(model_paths, tta, host, port, log_requests, device):
    """Serve a local web page where you draw a digit with the mouse or a finger (or drop a photo) and see,
    as you draw, the digit the network reads, its ten probabilities, the 28x28 it sees and which pixels
    pushed it to its answer. `POST /api/predict` with a picture as the body answers the same as JSON.

    \b
    Example:
      bp-train serve --model runs/cnn/model.npz     then open http://127.0.0.1:8000/
      bp-train serve --model runs/fast-cnn-ensemble  (an ensemble folder: the members' average)
    """
    from ..serve.server import serve as run_server
    from ..training.recognize import check_fits
    from ..training.voting import load_ensemble

    if not host.strip():  # Python's servers take '' for every interface: never what an empty value means
        raise BadInput("--host '': give an address: 127.0.0.1 for this machine alone, 0.0.0.0 for every network")

    model = load_ensemble(model_paths, device=device or "cpu", tta=tta)
    check_fits(model.network, model_paths[0])
    try:
        run_server(model, host, port, announce=lambda line: click.echo(line, err=True), quiet=not log_requests)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
