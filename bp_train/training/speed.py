"""Measurements: what backprop buys over numerical differentiation (`compare-speed`), and how close the
training loop runs to the machine's own matrix-multiply peak (`bench`).

Shared machines drift in speed by up to 2x over minutes, so every figure that matters here is a ratio of
two things measured in the same process, close together in time.
"""

from __future__ import annotations

import copy
import math
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from ..config import Config, build_network, config_from_dict
from ..config.build import flops_per_sample, optimizer_for
from ..nn.backend import synchronize, to_device

EPOCH_ROWS = 42_000  # the Kaggle training set


def human_seconds(seconds: float) -> str:
    """0.93 -> '0.93 s', 5400 -> '1.5 hours', 3.5e6 -> '41 days', 1e9 -> '32 years'."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1000:.3g} ms" if seconds < 0.1 else f"{seconds:.3g} s"


def with_hidden_size(config: Config, size: int) -> Config:
    """The same config with every hidden layer `size` units wide; for a CNN, every conv block `size`
    filters wide instead (its dense layers unchanged)."""
    raw = copy.deepcopy(config.to_dict())
    for layer in raw["model"]["conv"] or raw["model"]["hidden"]:
        layer["filters" if raw["model"]["conv"] else "size"] = size
    return config_from_dict(raw, f"{config.name} (width {size})")


def time_backprop(network, x, t, repeats: int = 15) -> float:
    """Median seconds of one backprop gradient."""
    network.gradient(x, t)  # warm-up: first-touch allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        network.gradient(x, t)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_numerical(network, x, t, budget: float, rng) -> tuple[float, int]:
    """Seconds of one full numerical gradient, and how many entries were actually differenced.

    All entries when that fits in `budget` seconds; otherwise a random sample of entries, timed, and the
    time extrapolated linearly (every entry costs the same two forward passes)."""
    total = network.parameter_count
    keys = list(network.params)
    probe = min(total, 50)
    per_entry = _time_entries(network, x, t, _random_entries(network, keys, probe, rng)) / probe
    if per_entry * total <= budget:
        start = time.perf_counter()
        network.numerical_gradient(x, t, keep_masks=True)
        return time.perf_counter() - start, total
    sample = max(probe, min(total, int(budget / per_entry)))
    seconds = _time_entries(network, x, t, _random_entries(network, keys, sample, rng))
    return seconds / sample * total, sample


def _random_entries(network, keys, count, rng) -> dict:
    """`count` entries spread over the parameters in proportion to their sizes."""
    sizes = np.array([network.params[k].size for k in keys])
    flat = rng.choice(sizes.sum(), size=count, replace=False)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    picked = {}
    for i, key in enumerate(keys):
        inside = flat[(flat >= bounds[i]) & (flat < bounds[i + 1])] - bounds[i]
        picked[key] = [np.unravel_index(j, network.params[key].shape) for j in inside]
    return picked


def _time_entries(network, x, t, indices) -> float:
    start = time.perf_counter()
    network.numerical_gradient(x, t, keep_masks=True, indices=indices)
    return time.perf_counter() - start


def train_both_ways(config: Config, x, t, steps: int) -> dict:
    """`steps` optimizer steps from the same seed with backprop and with numerical gradients (float64)."""
    losses = {}
    for method in ("backprop", "numerical"):
        network = build_network(config, seed=config.train.seed, dtype="float64", device=config.train.device)
        optimizer = optimizer_for(config)
        history = []
        for _ in range(steps):
            grads = network.gradient(x, t) if method == "backprop" else network.numerical_gradient(x, t)
            history.append(network.loss(x, t, train=True))
            optimizer.update(network.params, grads)
        losses[method] = history
    diff = max(abs(a - b) for a, b in zip(losses["backprop"], losses["numerical"]))
    return {
        "steps": steps,
        "backprop_losses": losses["backprop"],
        "numerical_losses": losses["numerical"],
        "max_loss_difference": diff,
    }


def compare_speed(config: Config, x, t, sizes, steps: int = 3, budget: float = 10.0, log=None) -> dict:
    """One gradient step each way, per hidden size, on the same network, batch and seed."""
    rng = np.random.default_rng([config.train.seed, 6])
    rows = []
    for size in sizes:
        sized = with_hidden_size(config, size)
        network = build_network(sized, seed=sized.train.seed, dtype="float64", device=sized.train.device)
        backprop = time_backprop(network, x, t)
        numerical, measured = time_numerical(network, x, t, budget, rng)
        steps_per_epoch = math.ceil(EPOCH_ROWS / len(x))
        row = {
            "hidden_size": size,
            "layers": sized.describe_layers(),
            "parameters": network.parameter_count,
            "backprop_ms": backprop * 1e3,
            "numerical_s": numerical,
            "speedup": numerical / backprop,
            "numerical_entries_timed": measured,
            "extrapolated": measured < network.parameter_count,
            "epoch_backprop_s": backprop * steps_per_epoch,
            "epoch_numerical_s": numerical * steps_per_epoch,
        }
        rows.append(row)
        if log:
            log(row)
    smallest = with_hidden_size(config, min(sizes))
    training = train_both_ways(smallest, x, t, steps) if steps else None
    return {
        "batch": len(x),
        "epoch_rows": EPOCH_ROWS,
        "sizes": rows,
        "training_check": training,
        "training_check_hidden_size": min(sizes),
    }


# --- make bench: training throughput against the matmul peak ------------------------------------------


def matmul_gflops(xp=np, n: int | None = None, repeats: int = 3) -> float:
    """Best-of float32 n x n matrix-multiply rate on the array module's device: the practical peak for our
    work (n = 2048 on the CPU; 8192 on a GPU, which smaller products leave idle)."""
    n = n or (2048 if xp is np else 8192)
    a = to_device(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32), xp)
    b = to_device(np.random.default_rng(1).standard_normal((n, n), dtype=np.float32), xp)
    a @ b
    synchronize(xp)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(xp)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


@contextmanager
def busy_neighbour():
    """Another process keeping one core busy for the duration of the block, as on a shared machine."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning before threads are chosen
        yield
    finally:
        spinner.kill()
        spinner.wait()


@contextmanager
def layer_timer(network, optimizer, halves=None):
    """Accumulate the seconds spent in each kind of layer's forward and backward (and in the loss and the
    optimizer) while the block runs: {"Convolution backward": 3.1, ...}. Wraps the instances' methods,
    the two batch halves' too (split.py): their seconds add up over both threads."""
    totals: dict[str, float] = {}
    adding = threading.Lock()

    def timed(name, method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                with adding:
                    totals[name] = totals.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    heads = [network.last_layer, *(halves.heads if halves is not None else ())]
    parts = [*network.layers.values(), *heads]
    for half in halves.halves if halves is not None else ():
        parts += half
    for part in parts:
        kind = "loss" if part in heads else type(part).__name__
        part.forward = timed(f"{kind} forward", part.forward)
        part.backward = timed(f"{kind} backward", part.backward)
    optimizer.update = timed("optimizer", optimizer.update)
    optimizer.update_vectors = timed("optimizer", optimizer.update_vectors)
    try:
        yield totals
    finally:
        for part in parts:
            del part.forward, part.backward  # back to the class's own methods
        del optimizer.update, optimizer.update_vectors


def bench_training(config: Config, digits, epochs: int = 3, threads: int | None = None) -> dict:
    """Seconds per epoch of the training loop, its achieved GFLOP/s and the matmul peak measured around it,
    with `threads` BLAS threads (None: chosen as `fit` chooses them, from the cores free right now).

    FLOPs per sample are counted as 3 x those of the forward products (`config.build.flops_per_sample`): the
    forward product, and the two backward ones (dW and dx) of the same size; for a dense network that is
    6 x weights."""
    from ..machine.threads import blas_threads, choose_threads
    from .trainer import Trainer

    trainer = Trainer(config, run_dir="/nonexistent", show_progress=False, digits=digits)
    choice = choose_threads(threads)
    with blas_threads(choice.threads), layer_timer(trainer.network, trainer.optimizer, trainer.batch_halves()) as spent:
        cores = 2 if trainer.halves is not None else 1  # the halves' seconds add up over two threads
        xp = trainer.network.xp
        peaks, seconds, augmenting, profiles = [matmul_gflops(xp)], [], [], []
        for epoch in range(1, epochs + 1):
            trainer.augment_seconds = 0.0
            spent.clear()
            seconds.append(trainer.run_epoch(epoch)["seconds"])
            augmenting.append(trainer.augment_seconds)
            profiles.append(dict(spent))
            peaks.append(matmul_gflops(xp))
    # Epoch 1 warms up; of the rest the fastest counts, as the best of three counts for the matmul peak:
    # on a shared machine the slower epochs measure the neighbours, not the code.
    fastest = int(np.argmin(seconds[1:])) + 1 if len(seconds) > 1 else 0
    per_epoch = seconds[fastest]
    rows = len(trainer.x_train)
    achieved = 3 * flops_per_sample(config) * rows / per_epoch / 1e9
    peak = max(peaks)
    return {
        "config": config.name,
        "layers": config.describe_layers(),
        "rows": rows,
        "seconds_per_epoch": per_epoch,
        "epoch_seconds": seconds,
        "samples_per_second": rows / per_epoch,
        "gflops": achieved,
        "matmul_gflops": peak,
        "ratio": achieved / peak,
        "threads": choice.threads,
        "threads_reason": choice.reason,
        "augment_share": augmenting[fastest] / per_epoch,
        "batch_halves": trainer.halves is not None,
        # per core: with the batch in two halves on two threads, each kind's seconds over both, halved
        "profile": {
            name: t / cores / per_epoch for name, t in sorted(profiles[fastest].items(), key=lambda kv: -kv[1])
        },
    }


def load_benchmarks(path, log=None) -> dict:
    """A plain pandas.read_csv of the file, our first (parsing) load and our cached load, in one run."""
    import os
    import tempfile

    import pandas as pd

    from ..data.digits import load_digits

    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("BP_TRAIN_CACHE")
        os.environ["BP_TRAIN_CACHE"] = cache  # a fresh, empty cache: the first load must parse
        try:
            start = time.perf_counter()
            pd.read_csv(path)
            plain = time.perf_counter() - start
            start = time.perf_counter()
            load_digits(path)
            first = time.perf_counter() - start
            cached = min(_timed(load_digits, path) for _ in range(3))
        finally:
            if previous is None:
                del os.environ["BP_TRAIN_CACHE"]
            else:
                os.environ["BP_TRAIN_CACHE"] = previous
    figures = {
        "load": {
            "file": str(path),
            "pandas_read_csv_s": plain,
            "first_load_s": first,
            "cached_load_s": cached,
            "cached_speedup_vs_pandas": plain / cached,
        }
    }
    if log:
        log(
            f"loading {path}: pandas.read_csv {plain:.2f} s, bp-train first load {first:.2f} s (parse and "
            f"check), cached {cached * 1000:.1f} ms: {plain / cached:.0f}x faster than read_csv"
        )
    return figures


def _timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start
