"""`bp-train gradcheck`, `compare-speed` and `bench`: is backprop right, how much faster is it than numerical
differentiation, how fast does training run on this machine."""

from __future__ import annotations

import sys

import click

from ..config import load_config
from .common import (
    EXIT_CHECK_FAILED,
    SEED,
    BadInput,
    FiniteFloat,
    cache_option,
    device_option,
    emit_json,
    threads_option,
)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Network to check (default: built-in defaults, 784-100-10 ReLU).",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option(
    "--batch",
    default=4,
    show_default=True,
    type=click.IntRange(2),
    help="Rows in the batch (>= 2, so batch-dependent layers are really exercised).",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed for weights and rows.")
@click.option(
    "--tol",
    default=1e-6,
    show_default=True,
    type=FiniteFloat(0.0),
    help="Pass when every parameter's relative error is below this.",
)
@click.option(
    "--h", "step", default=1e-5, show_default=True, type=FiniteFloat(0.0), help="Step of the central differences."
)
@click.option(
    "--entries",
    metavar="N|all",
    help="Difference N seeded random entries per parameter, or 'all' (default: all where the "
    "network's size says that takes under about a minute, else a seeded sample sized by it: the "
    "same entries on every machine, idle or busy).",
)
@click.option(
    "--dtype",
    default="float64",
    show_default=True,
    type=click.Choice(["float64", "float32"]),
    help="Precision of the check; float32 is refused, as its central differences are noise.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@device_option
@cache_option
@threads_option
def gradcheck(config_path, overrides, batch, seed, tol, step, entries, dtype, as_json, device, no_cache):
    """Check backprop's gradient against central differences, parameter by parameter.

    Exit code 0 when every parameter's relative error |a-n| / max(1e-8, |a|+|n|) (norms over the
    parameter's entries) is below --tol, 1 otherwise.

    \b
    Example:
      bp-train gradcheck --config configs/sigmoid.yaml --batch 3
    """
    from tqdm import tqdm

    from ..config import build_network
    from ..data.digits import sample_rows
    from ..nn.gradient import gradcheck as run_gradcheck
    from ..nn.gradient import require_float64

    overrides = list(overrides) + ([f"train.device={device}"] if device else [])
    config = load_config(config_path, overrides)
    network = build_network(config, seed=seed, dtype=dtype, device=config.train.device)
    require_float64(network.params["W1"], "gradcheck")
    x, t, described = sample_rows(
        config.data.train, batch * 10, seed, cache=not no_cache, classes=config.model.output_size
    )
    sampled_note = None
    if entries is None:
        entries, sampled_note = default_entries(config, network, batch)
    elif entries == "all":
        entries = None
    else:
        entries = parse_entries(entries)
    total = sum(min(entries or p.size, p.size) for p in network.params.values())
    with tqdm(total=total, unit="entry", desc="numerical gradient", disable=as_json, leave=False) as bar:
        result = run_gradcheck(
            network, x, t, batch=batch, tol=tol, h=step, entries=entries, seed=seed, progress=bar.update
        )
    result.update(config=config.name, layers=config.describe_layers(), data=described, sampled=sampled_note)
    if as_json:
        emit_json(result)
    else:
        print_gradcheck(result, config, described, step, tol, sampled_note)
    sys.exit(0 if result["passed"] else EXIT_CHECK_FAILED)


def print_gradcheck(result: dict, config, described: str, step: float, tol: float, sampled_note) -> None:
    """The gradcheck table a person reads: what was checked, then one row per parameter."""
    click.echo(
        f"gradcheck {config.name} {config.describe_layers()}: batch of {result['batch']} from {described}, "
        f"float64, h = {step:g}"
    )
    if sampled_note:
        click.echo(sampled_note)
    if result["replaced_near_kink"]:
        click.echo(
            f"({result['replaced_near_kink']} rows replaced: a ReLU input lay within "
            f"{10 * step:g} of the kink at 0, where the loss has no derivative)"
        )
    if result["kinks_crossed"]:
        click.echo(
            f"({result['kinks_crossed']} entries left out: between w-h and w+h a ReLU or a max pool "
            "flipped, so the loss has no derivative there to compare with)"
        )
    click.echo(f"{'param':<8}{'shape':<14}{'checked':>9}{'rel error':>12}{'max entry':>12}{'mean |a-n|':>12}  result")
    for row in result["params"]:
        click.echo(
            f"{row['param']:<8}{'x'.join(map(str, row['shape'])):<14}{row['checked']:>9}"
            f"{row['rel_error']:>12.2e}{row['max_entry_rel_error']:>12.2e}{row['mean_abs_diff']:>12.2e}"
            f"  {'PASS' if row['passed'] else 'FAIL'}"
        )
    failed = [r["param"] for r in result["params"] if not r["passed"]]
    click.echo(
        f"tolerance {tol:g}: "
        + ("PASS, backprop agrees with numerical differentiation" if not failed else "FAIL in " + ", ".join(failed))
    )


# What a default gradcheck may cost, as a fixed function of the network (never of the machine's speed or
# load, so that one config gets the same verdict on the same entries everywhere): the estimated seconds of
# a forward pass on the batch, PASS_OVERHEAD plus its multiply-adds at PASS_RATE, two passes per entry.
GRADCHECK_BUDGET = 60.0
PASS_OVERHEAD = 5e-5  # seconds: the Python and NumPy calls of one small forward pass
PASS_RATE = 5e9  # FLOP/s: float64 products on a batch of a few rows, one core


def default_entries(config, network, batch: int) -> tuple[int | None, str | None]:
    """None (every entry) when that is estimated to take under GRADCHECK_BUDGET seconds; else a seeded
    sample per parameter sized to that budget, the same on every machine, and a line saying so."""
    from ..config.build import flops_per_sample

    per_entry = 2 * (PASS_OVERHEAD + batch * flops_per_sample(config) / PASS_RATE)
    total = network.parameter_count
    if per_entry * total <= GRADCHECK_BUDGET:
        return None, None
    entries = max(10, int(GRADCHECK_BUDGET / per_entry / len(network.params)))
    return entries, (
        f"(sampled: {entries} seeded random entries per parameter, the same on every machine; "
        f"--entries all checks all {total:,})"
    )


def parse_entries(value: str) -> int:
    """--entries N: a whole number >= 1 (a bounded one: 10 digits are more entries than any network has)."""
    if not (value.isdigit() and len(value) <= 10 and int(value) >= 1):
        raise BadInput(f"--entries {value[:40]!r}: expected a whole number >= 1 or 'all'")
    return int(value)


def parse_sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",")]
    except ValueError:
        raise BadInput(f"--sizes {value!r}: expected whole numbers separated by commas, e.g. 10,50,100") from None
    if not sizes or min(sizes) < 1:
        raise BadInput(f"--sizes {value!r}: every size must be at least 1")
    return sizes


@click.command("compare-speed")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Network to measure (default: built-in defaults, 784-100-10 ReLU); its hidden layers are resized.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set data.train=data/train.csv.",
)
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1), help="Rows per gradient step.")
@click.option(
    "--steps",
    default=3,
    show_default=True,
    type=click.IntRange(0),
    help="Training steps each way, to show that the losses match (0: skip).",
)
@click.option("--sizes", default="10,50,100", show_default=True, help="Hidden-layer widths to compare.")
@click.option(
    "--budget",
    default=10.0,
    show_default=True,
    type=FiniteFloat(0.0),
    help="Seconds of numerical differencing per size before sampling entries and extrapolating.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@device_option
@cache_option
@threads_option
def compare_speed(config_path, overrides, batch, steps, sizes, budget, as_json, device, no_cache):
    """Time one gradient by backprop and by numerical differentiation, for growing networks.

    \b
    Example:
      bp-train compare-speed --config configs/default.yaml --sizes 10,50,100,200
    """
    from ..data.digits import sample_rows
    from ..training.speed import EPOCH_ROWS, human_seconds, with_hidden_size
    from ..training.speed import compare_speed as run

    overrides = list(overrides) + ([f"train.device={device}"] if device else [])
    config = load_config(config_path, overrides)
    sizes = parse_sizes(sizes)
    for size in sizes:  # every width checked (memory included) before the first is timed
        with_hidden_size(config, size)
    x, t, described = sample_rows(
        config.data.train, batch, config.train.seed, cache=not no_cache, classes=config.model.output_size
    )
    if not as_json:
        click.echo(f"one gradient step on a batch of {len(x)} ({described}), float64, same weights and seed")
        click.echo(
            f"{'layers':<20}{'params':>9}{'backprop':>12}{'numerical':>13}{'speed-up':>11}"
            f"   one epoch of {EPOCH_ROWS:,} rows: backprop / numerical"
        )

    def show(row):
        if as_json:
            return
        mark = "*" if row["extrapolated"] else " "
        click.echo(
            f"{row['layers']:<20}{row['parameters']:>9,}{row['backprop_ms']:>9.2f} ms"
            f"{row['numerical_s']:>11.2f} s{mark}{row['speedup']:>10,.0f}x   "
            f"{human_seconds(row['epoch_backprop_s'])} / {human_seconds(row['epoch_numerical_s'])}"
        )

    result = run(config, x, t, sizes, steps=steps, budget=budget, log=show)
    result["data"] = described
    if as_json:
        emit_json(result)
        return
    if any(r["extrapolated"] for r in result["sizes"]):
        click.echo(
            "* numerical time extrapolated linearly from a timed random sample of entries "
            "(each entry costs the same two forward passes)"
        )
    check = result["training_check"]
    if check:
        click.echo(
            f"{check['steps']} training steps each way (hidden {result['training_check_hidden_size']}): "
            f"backprop losses {', '.join(f'{v:.6f}' for v in check['backprop_losses'])}; numerical "
            f"{', '.join(f'{v:.6f}' for v in check['numerical_losses'])}; "
            f"max difference {check['max_loss_difference']:.1e}"
        )


@click.command()
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="Labelled training CSV (the 42,000-row Kaggle train.csv).",
)
@click.option(
    "--config",
    "config_paths",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Configs to time (repeatable; default: the built-in 784-100-10 and a 784-800-800-10 network).",
)
@click.option(
    "--epochs",
    default=4,
    show_default=True,
    type=click.IntRange(2),
    help="Epochs per config; the first warms up, the fastest of the rest counts.",
)
@click.option(
    "--busy",
    is_flag=True,
    help="Also time each config while another process keeps one core busy, and report busy/idle.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    metavar="N",
    help="BLAS threads for every measurement (default: chosen from the free cores, as fit does).",
)
@click.option("--profile", is_flag=True, help="Also say where each config's epoch goes, layer kind by layer kind.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@device_option
def bench(data_path, config_paths, epochs, busy, threads, profile, as_json, device):
    """Training speed against this machine's own float32 matmul peak, measured in the same run; with
    --busy, also on a machine where another process keeps one core busy."""
    from ..data.digits import load_digits
    from ..training.speed import bench_training, busy_neighbour, load_benchmarks

    figures = load_benchmarks(data_path, log=None if as_json else click.echo)
    digits = load_digits(data_path, require_labels=True)
    on = ["data.train=" + data_path] + ([f"train.device={device}"] if device else [])
    configs = [load_config(p, on) for p in config_paths] or [
        load_config(None, on),
        load_config(None, on + ["name=mlp-800-800", "model.hidden=[{size: 800}, {size: 800}]"]),
    ]
    figures["training"] = []
    for config in configs:
        row = bench_training(config, digits, epochs, threads)
        if not as_json:
            click.echo(
                f"{row['config']:<20}{row['layers']:<42}{row['seconds_per_epoch']:6.2f} s/epoch"
                f"{row['samples_per_second']:>10,.0f} samples/s{row['gflops']:7.1f} GFLOP/s"
                f"  matmul peak {row['matmul_gflops']:.1f}  ratio {row['ratio']:.2f}  {row['threads']} thread(s)"
                + (f"  augmentation {row['augment_share']:.0%} of the epoch" if row["augment_share"] else "")
            )
        if profile and not as_json:
            click.echo(
                f"{'':<20}where the epoch goes{' (per core, the batch in two halves)' if row['batch_halves'] else ''}: "
                + ", ".join(f"{name} {share:.0%}" for name, share in row["profile"].items() if share >= 0.01)
            )
        if busy:
            with busy_neighbour():
                loaded = bench_training(config, digits, epochs, threads)
                # what NumPy does by default: a BLAS thread on every core, busy or not
                naive = (
                    bench_training(config, digits, 2, row["threads"]) if loaded["threads"] != row["threads"] else loaded
                )
            row["busy"], row["busy_all_cores"] = loaded, naive
            row["busy_over_idle"] = loaded["seconds_per_epoch"] / row["seconds_per_epoch"]
            if not as_json:
                click.echo(
                    f"{'':<20}{'one core kept busy:':<42}{loaded['seconds_per_epoch']:6.2f} s/epoch"
                    f"{loaded['samples_per_second']:>10,.0f} samples/s  busy/idle {row['busy_over_idle']:.2f}"
                    f"  {loaded['threads']} thread(s) ({loaded['threads_reason']}); with {naive['threads']} "
                    f"thread(s) as NumPy would: {naive['seconds_per_epoch']:.2f} s/epoch"
                )
        figures["training"].append(row)
    if as_json:
        emit_json(figures)
