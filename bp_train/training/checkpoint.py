"""The checkpoint format, in one place: what a checkpoint holds (the network's and the optimizer's arrays,
the run state, the random streams), writing it, and reading it back.

A checkpoint gets the checks a model file gets: every array named, shaped and typed as the network and
optimizer its config describes, read from the headers before any data; the run state and random streams
checked key by key. A tampered or damaged checkpoint is one line, before anything is written."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, config_from_dict
from ..errors import BPTrainError, ConfigError, ModelFileError
from ..files.store import MODEL_FORMAT, load_arrays, save_arrays

# What `fit --resume` lets a user change: everything else must match the interrupted run.
RESUMABLE_CHANGES = ("train.epochs", "train.early_stopping", "train.device")  # a checkpoint is device-free


@dataclass
class RunState:
    """Everything that changes during a run and must be saved for an exact resume."""

    epoch: int = 0  # epochs completed
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    bad_epochs: int = 0  # epochs without improvement, for early stopping
    stopped_early: bool = False


def expected_arrays(network, optimizer) -> dict[str, tuple]:
    """{name in the checkpoint: shape} of everything a resume loads."""
    shapes = {f"param/{key}": value.shape for key, value in network.state().items()}
    params = {key: p.shape for key, p in network.params.items()}
    shapes.update({f"opt/{slot}/{key}": shape for slot in optimizer.slots for key, shape in params.items()})
    shapes["opt/steps"] = ()
    return shapes


def check_run_state(run, path: Path, fields: dict) -> None:
    if not isinstance(run, dict) or set(run) != set(fields):
        raise ModelFileError(f"{path}: its run state is not bp-train's (expected the keys {', '.join(fields)})")
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**7
    for key in ("epoch", "best_epoch", "bad_epochs"):
        if not whole(run[key]):
            raise ModelFileError(f"{path}: run state '{key}' is {str(run[key])[:40]!r}; expected a whole number >= 0")
    if not isinstance(run["stopped_early"], bool):
        raise ModelFileError(f"{path}: run state 'stopped_early' is not true or false")
    best = run["best_value"]
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float)) or not math.isfinite(best)):
        raise ModelFileError(f"{path}: run state 'best_value' is not a number")
    history = run["history"]
    if not isinstance(history, list) or len(history) != run["epoch"] or not all(isinstance(r, dict) for r in history):
        raise ModelFileError(f"{path}: run state 'history' is not one row per epoch done ({run['epoch']})")


def check_random_streams(rng, path: Path) -> None:
    if (
        not isinstance(rng, dict)
        or not {"shuffle", "dropout"} <= set(rng)
        or set(rng) - {"shuffle", "dropout", "augment"}
    ):
        raise ModelFileError(f"{path}: its random streams are not bp-train's (shuffle, dropout, augment)")
    for name, state in rng.items():
        try:
            np.random.default_rng(0).bit_generator.state = state  # the generator checks what it is given
        except (TypeError, ValueError, KeyError, OverflowError):
            raise ModelFileError(f"{path}: the state of its '{name}' random stream is damaged") from None


def load_checkpoint(path: Path, network, optimizer) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint that fits `network` and `optimizer`, or a ModelFileError."""
    fields = {f.name: f for f in dataclasses.fields(RunState)}
    wanted = expected_arrays(network, optimizer)

    def check(headers, meta):
        names = {name for name in headers if name != "meta"}
        # before the first step the optimizer has no slots yet: all of them, or none
        slots = {name for name in wanted if name.startswith("opt/") and name != "opt/steps"}
        required = set(wanted) - slots if not names & slots else set(wanted)
        for name in sorted(names - set(wanted)):
            raise ModelFileError(
                f"{path}: holds an array '{name[:60]}' that the network of its config does not "
                "have; a checkpoint of another run?"
            )
        for name in sorted(required - names):
            raise ModelFileError(f"{path}: lacks the array '{name[:60]}' that the network of its config needs")
        for name, (shape, dtype) in headers.items():
            if name != "meta" and (tuple(shape) != tuple(wanted[name]) or dtype.kind not in ("f", "i", "u")):
                raise ModelFileError(f"{path}: '{name}' is {dtype} {tuple(shape)}, expected {tuple(wanted[name])}")
        check_run_state(meta.get("run"), path, fields)
        check_random_streams(meta.get("rng"), path)

    return load_arrays(path, kind="checkpoint", check=check)


def save_checkpoint(path: Path, config_dict: dict, network, optimizer, state: RunState, streams: dict) -> None:
    """Write everything an exact resume needs: `streams` maps 'shuffle', 'dropout', 'augment' to their
    random generators."""
    arrays = {f"param/{k}": v for k, v in network.state().items()}
    arrays.update({f"opt/{k}": v for k, v in optimizer.state().items()})
    meta = {
        "format": MODEL_FORMAT,
        "config": config_dict,
        "run": vars(state),
        "rng": {name: rng.bit_generator.state for name, rng in streams.items()},
    }
    save_arrays(path, arrays, meta)


def restore_checkpoint(path: Path, network, optimizer, streams: dict) -> RunState:
    """Set `network`, `optimizer` and the random generators in `streams` as the checkpoint at `path` left
    them, and return its run state; everything is checked before anything is set."""
    arrays, meta = load_checkpoint(path, network, optimizer)
    network.load_state({k[6:]: v for k, v in arrays.items() if k.startswith("param/")})
    optimizer.load_state({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    for name, rng in streams.items():
        if name in meta["rng"]:  # checkpoints from before augmentation have no 'augment' stream
            rng.bit_generator.state = meta["rng"][name]
    return RunState(**meta["run"])


# --- resuming --------------------------------------------------------------------------------------------


def _flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def saved_config(run_dir: Path) -> Config:
    """The config a run was trained with, read from its checkpoint."""
    checkpoint = run_dir / "checkpoint.npz"
    if not checkpoint.is_file():
        raise BPTrainError(f"{run_dir}: no checkpoint.npz to resume from (is this a bp-train run folder?)")
    _, meta = load_arrays(checkpoint, kind="checkpoint")
    return config_from_dict(meta["config"], f"{checkpoint} (its saved config)")


def resume_config(run_dir: Path, requested: Config) -> Config:
    """The config to resume `run_dir` with: the run's own, with only RESUMABLE_CHANGES taken from
    `requested`. Any other difference (layer sizes, data, optimizer, seed...) is an error that names it."""
    return resumed(saved_config(run_dir), requested, str(run_dir))


def resumed(saved: Config, requested: Config, where: str) -> Config:
    """`saved` with RESUMABLE_CHANGES taken from `requested`; any other difference is a ConfigError."""
    old, new = _flatten(saved.to_dict()), _flatten(requested.to_dict())
    for key in sorted(set(old) | set(new)):
        allowed = any(key == c or key.startswith(c + ".") for c in RESUMABLE_CHANGES) or key == "name"
        if old.get(key) != new.get(key) and not allowed:
            raise ConfigError(
                f"cannot resume {where}: '{key}' changed from {old.get(key)!r} to "
                f"{new.get(key)!r}; only {', '.join(RESUMABLE_CHANGES)} may change on resume"
            )
    merged, wanted = saved.to_dict(), requested.to_dict()
    for dotted in RESUMABLE_CHANGES:  # each allowed change taken from the request, as listed there
        *sections, key = dotted.split(".")
        source, target = wanted, merged
        for name in sections:
            source, target = source[name], target[name]
        target[key] = source[key]
    return config_from_dict(merged, where)
