"""`bp-train plot`, `show` and `explain`: the commands that look at data, runs and graphs (registered on the
main group in cli.py)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..config import load_config
from ..config.safeyaml import short
from ..data.digits import load_digits, to_float
from ..files.model import load_model
from .common import BadInput, cache_option, emit_json, refuse_overwriting


def training_data(config) -> dict[str, str]:
    """The config's training CSV (or its .gz) as an input no output may overwrite."""
    from ..data.digits import resolve

    return {f"training data ({config.data.train})": str(resolve(config.data.train))}


def config_of(source):
    """The config a YAML file or a run folder (its config.yaml) describes."""
    path = Path(source)
    return load_config(path / "config.yaml" if path.is_dir() else path)


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option(
    "--augment",
    is_flag=True,
    help="SOURCE is a config or run: draw training digits beside their distortions (train.augment).",
)
@click.option(
    "--activations",
    is_flag=True,
    help="SOURCE is a config or run: histograms of each hidden layer's activations for 1,000 digits.",
)
@click.option(
    "--weights",
    is_flag=True,
    help="SOURCE is a run or model.npz: the first layer's weights as pictures (28x28 per dense unit, "
    "or the convolution's filters).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="The PNG to write for --augment, --activations, --weights or several runs (default: in the run "
    "folder, or augment.png / activations.png / weights.png / compare.png here).",
)
@cache_option
def plot(sources, augment, activations, weights, out, no_cache):
    """Save learning curves, a confusion-matrix heat map and a grid of misclassified validation digits as
    PNGs in the run folder SOURCE. With several runs, overlay their learning curves on one figure; with
    --augment, draw training digits and their distortions; with --activations, the distribution of each
    hidden layer's activations (needs matplotlib: .venv/bin/python -m pip install -e '.[plot]').

    \b
    Examples:
      bp-train plot runs/default
      bp-train plot runs/compare/sgd runs/compare/adam --out optimizers.png
      bp-train plot --augment configs/best-cnn-augmented.yaml --out augment.png
      bp-train plot --activations configs/sigmoid.yaml
    """
    from ..views.plots import plot_augmented, plot_comparison, plot_run

    chosen = [name for name, flag in (("augment", augment), ("activations", activations), ("weights", weights)) if flag]
    if len(chosen) > 1:
        raise BadInput(f"give one of --{', --'.join(chosen)}, not several")
    if chosen and len(sources) > 1:
        raise BadInput(f"--{chosen[0]} draws one config or run; got {len(sources)}")
    source = Path(sources[0])
    read = {}
    for item in map(Path, sources):
        for name in ("model.npz", "metrics.csv", "config.yaml", "checkpoint.npz") if item.is_dir() else ("",):
            read[f"file {item / name if name else item}"] = str(item / name) if name else str(item)
    if augment or activations:  # these read the config's training CSV too
        read.update(training_data(config_of(source)))
    refuse_overwriting({"--out": out}, read)

    def target(default_name):
        return Path(out) if out else (source / default_name if source.is_dir() else Path(default_name))

    if augment:
        from ..data.augment import augmented_samples

        samples = augmented_samples(config_of(source), count=6, versions=5, cache=not no_cache)
        click.echo(f"wrote {plot_augmented(samples, target('augment.png'))}")
    elif activations:
        click.echo(f"wrote {plot_activations(source, target('activations.png'), not no_cache)}")
    elif weights:
        from ..views.plots import plot_weights

        model = source / "model.npz" if source.is_dir() else source
        network, _, _ = load_model(model)
        click.echo(f"wrote {plot_weights(network, target('weights.png'))}")
    elif len(sources) > 1:
        path = Path(out) if out else Path("compare.png")
        click.echo(f"wrote {plot_comparison([Path(s) for s in sources], path)}")
    else:
        if out:
            raise BadInput(
                "--out goes with --augment, --activations or several runs; `plot RUN` writes its "
                "PNGs into the run folder"
            )
        for path in plot_run(source, cache=not no_cache, log=click.echo):
            click.echo(f"wrote {path}")


def plot_activations(source: Path, path: Path, cache: bool) -> Path:
    """Histograms of the hidden activations of a run's trained model, or of a config's fresh network."""
    from ..config import build_network
    from ..data.digits import sample_rows
    from ..views.plots import activation_histograms, hidden_activations, save_figure

    if source.is_dir():
        network, config, _ = load_model(source / "model.npz")
        what = f"{source} (trained)"
    else:
        config = load_config(source)
        network = build_network(config, seed=config.train.seed)
        init = config.model.init
        what = (
            f"{config.name}, initial weights ({init} init)"
            if isinstance(init, str)
            else f"{config.name}, initial weights of std {init:g}"
        )
    x, _, described = sample_rows(
        config.data.train, 1000, config.train.seed, cache=cache, classes=config.model.output_size
    )
    layers = hidden_activations(network, x)
    if not layers:
        raise BadInput(f"{source}: the network has no hidden activation layers to draw")
    title = f"Hidden activations of {what}, {described}"
    return save_figure(lambda plt: activation_histograms(layers, title, plt), path)


@click.command()
@click.argument("source", type=click.Path(exists=False))
@click.option("--rows", default="0-4", show_default=True, help="Rows of a CSV to show: '3', '0-9' or '1,5,7'.")
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="At most this many digits (for a run folder, or with --augment).",
)
@click.option(
    "--augment",
    is_flag=True,
    help="SOURCE is a config or run: show training digits beside their distortions (train.augment).",
)
@click.option(
    "--image",
    is_flag=True,
    help="SOURCE is a picture of a digit: show it beside the 28x28 that MNIST's preparation makes of it.",
)
def show(source, rows, limit, augment, image):
    """Print digits as text art: rows of a CSV, a run folder's misclassified validation digits, (with
    --augment) training digits beside the distortions a config's train.augment draws, or (with --image) a
    picture beside what a network is shown of it."""
    from ..training.report import text_art

    path = Path(source)
    if image:
        show_image(path)
        return
    if augment:
        from ..data.augment import augmented_samples

        for original, versions in augmented_samples(config_of(path), count=min(limit, 4), versions=2):
            click.echo(
                "original" + " " * 50 + "   ".join(f"distortion {i + 1}".ljust(56) for i in range(len(versions)))
            )
            columns = [text_art(original)] + [text_art(v) for v in versions]
            click.echo("\n".join("   ".join(parts) for parts in zip(*columns)))
        return
    if path.is_dir():
        from ..training.report import misclassified, run_validation

        network, config, val, predicted = run_validation(path)
        if val is None:
            click.echo(
                f"{path}: the run has no validation split (data.val_fraction is 0), so no misclassified "
                f"validation digits; here are its first training rows, with the model's predictions instead"
            )
            digits = load_digits(config.data.train, require_labels=True)
            train = digits.subset(np.arange(min(limit, len(digits))))
            guesses = network.predict(to_float(train.images, network.dtype)).argmax(axis=1)
            items = [
                (image, f"training row {i}: label {label}, predicted {guess}")
                for i, (image, label, guess) in enumerate(zip(train.images, train.labels, guesses))
            ]
        else:
            items = misclassified(val, predicted, limit)
        if not items:
            click.echo(f"{path}: every one of the {len(val):,} validation digits is classified correctly")
    else:
        digits = load_digits(path)
        chosen = parse_rows(rows, len(digits))
        items = [
            (digits.images[r], f"row {r}" + (f": label {digits.labels[r]}" if digits.labels is not None else ""))
            for r in chosen
        ]
    for image, caption in items:
        click.echo(caption)
        click.echo("\n".join(text_art(image)))


def show_image(path: Path) -> None:
    """The picture as it is (shrunk to 28 columns, its own light and dark), then as prepared, side by side."""
    from ..data.images import naive, prepare
    from ..training.report import text_art

    prepared = prepare(path)
    before = naive(path)
    before = before if np.median(before) < 128 else 255 - before  # shown as ink, whatever the paper
    notes = f" ({'; '.join(prepared.notes)})" if prepared.notes else ""
    click.echo(f"{'the picture, resized to 28x28':<56}   as MNIST prepared its digits{notes}")
    columns = [text_art(before.round().astype(np.uint8)), text_art(prepared.pixels.round().astype(np.uint8))]
    click.echo("\n".join("   ".join(parts) for parts in zip(*columns)))
    click.echo(
        "\nsteps: transparency onto white, grey, polarity from the border, background removed, cropped to the "
        "ink, longer side to 20 pixels, placed in 28x28 by its centre of mass"
    )


@click.command()
@click.argument("example", type=click.Choice(["apple", "apple-orange", "xyz", "sigmoid-chain", "max-copy", "network"]))
@click.option(
    "--config",
    "config_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="For 'network': the network to trace (default: the built-in 784-100-10); repeat it to "
    "trace several networks beside each other.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="For 'network': override a config value.")
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    help="For 'network': trace a trained model.npz instead of freshly initialized weights.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False),
    help="For 'network': trace your own digit (a photo, scan or drawing), prepared as predict --image "
    "prepares it, through the network as it reads it (evaluation mode).",
)
@click.option(
    "--label",
    type=click.IntRange(0, 9),
    help="For 'network' with --image: the digit the loss is taken for (default: the one the network reads).",
)
@click.option(
    "--row",
    type=click.IntRange(0),
    help="For 'network' without --image: trace row N of the config's training data (0: the first after the "
    "header) rather than one drawn by the seed.",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False),
    help="Also draw the graph to this PNG (needs matplotlib); for 'network' with --image, every layer's output "
    "and the gradient arriving at it, on one sheet.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the values and gradients as one JSON object.")
def explain(example, config_paths, overrides, model_path, image, label, row, png, as_json):
    """Work a textbook computational graph forward and backward with bp-train's own gates, printing every
    node's value and every edge's gradient with the rule that produced it; or, with 'network', trace one
    real digit through a network layer by layer (a deep sigmoid network's gradient vanishes toward the
    input; a ReLU network's does not).

    \b
    Examples:
      bp-train explain apple
      bp-train explain xyz --png xyz.png
      bp-train explain network --config configs/deep-sigmoid.yaml --config configs/deep-relu.yaml
      bp-train explain network --model runs/default/model.npz --image my-seven.png --label 7 --json
    """
    from ..views import explain as E

    inputs = {"model file (--model)": model_path, **{f"config file (--config {path})": path for path in config_paths}}
    if example != "network":
        if config_paths or overrides or model_path or image or label is not None or row is not None:
            raise BadInput(
                f"--config, --set, --model, --image, --label and --row go with 'explain network', not '{example}'"
            )
    else:
        networks = network_options(config_paths, overrides, model_path, image, label, row, inputs)
    refuse_overwriting({"--png": png}, inputs)
    if png and not Path(png).resolve().parent.is_dir():  # said before the graph is printed, not after
        raise BadInput(f"--png {png}: the folder {str(Path(png).parent)!r} does not exist")
    if example != "network":
        graph = E.EXAMPLES[example]
        result = E.run(graph)
        if as_json:
            emit_json(
                {k: v for k, v in result.items() if k != "edges"}
                | {"edges": [dict(zip(("from", "to", "value", "gradient", "rule"), edge)) for edge in result["edges"]]}
            )
        else:
            click.echo(E.format_graph(graph, result))
        figure_maker = lambda plt: E.draw_graph(graph, result, png, plt)
    else:
        picture = E.own_digit(image, networks) if image is not None else None
        traces = [E.trace_digit(network, config, picture, label, row) for network, config in networks]
        walks = [trace.pop("walk", None) for trace in traces]  # a person's digit: every layer's arrays
        if as_json:
            emit_json(traces[0] if len(traces) == 1 else {"networks": traces})
        else:
            click.echo("\n\n".join(E.format_trace(trace["network"], trace["layers"]) for trace in traces))
            for trace in traces if picture is not None else []:
                click.echo(E.own_digit_line(trace))
            click.echo("\n" + E.format_ratios(traces))
        figure_maker = lambda plt: E.draw_network_traces(traces, walks, networks, plt)
    if png:
        from ..views.plots import save_figure

        click.echo(f"wrote {save_figure(figure_maker, Path(png))}", err=as_json)


def network_options(config_paths, overrides, model_path, image, label, row, inputs: dict) -> list[tuple]:
    """`explain network`'s options checked together: the networks to trace; `inputs` gains the files read."""
    networks = networks_to_trace(config_paths, overrides, model_path)
    if label is not None and image is None:
        raise BadInput("--label goes with --image: the loss of your own digit for that label")
    if row is not None and image is not None:
        raise BadInput("--row and --image both name the digit to trace; give one or the other")
    if image is not None:
        inputs[f"image {image}"] = image
    else:
        for _, config in networks:  # the digit traced comes from each config's training data
            inputs.update(training_data(config))
    return networks


def networks_to_trace(config_paths, overrides, model_path) -> list[tuple]:
    """(network, config) for a trained model, or for each config named (the built-in one when none)."""
    from ..config import build_network

    if model_path and config_paths:
        raise BadInput("--model and --config both name a network to trace; give one or the other")
    if model_path:
        network, config, _ = load_model(model_path)
        return [(network, config)]
    configs = [load_config(path, overrides) for path in config_paths or [None]]
    return [(build_network(config, seed=config.train.seed), config) for config in configs]


def parse_rows(spec: str, count: int, limit: int = 1000) -> list[int]:
    """'3', '0-9' or '1,5,7' -> row numbers, each checked against `count` and at most `limit` of them
    (checked before any range is expanded, so '0-999999999' costs nothing)."""
    chosen = []
    for part in spec.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise BadInput(
                f"--rows {short(spec)}: expected a row number, a range like 0-9, or a list like 1,5,7"
            ) from None
        if last < first:
            raise BadInput(f"--rows {short(spec)}: the range {first}-{last} runs backwards; write {last}-{first}")
        for row in (first, last):
            if not 0 <= row < count:
                raise BadInput(f"--rows {short(spec)}: row {row} is outside 0..{count - 1}")
        if len(chosen) + last - first + 1 > limit:
            raise BadInput(f"--rows {short(spec)}: more than {limit} rows; show fewer at a time")
        chosen.extend(range(first, last + 1))
    return chosen
