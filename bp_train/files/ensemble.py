"""Ensemble folders: one config trained with several seeds, one run folder per member, and a manifest.

    runs/fast-cnn-ensemble/
        ensemble.yaml      which members there are, and the config they were trained with
        seed-0/            an ordinary run folder (model.npz, checkpoint.npz, metrics.csv, config.yaml)
        seed-1/
        ...

Each member is a run of its own: `fit --resume runs/fast-cnn-ensemble/seed-1` continues that member
alone, and the others are never touched. The manifest is what makes a missing member an error rather than
a quietly smaller ensemble. Wherever a model file is taken (`--model`), a run folder (its model.npz) or an
ensemble folder (every member's) is taken too: `model_files` says which files a path stands for.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..config import safeyaml
from ..errors import BPTrainError, ModelFileError, unreadable
from .store import read_meta, write_text

MANIFEST = "ensemble.yaml"
ENSEMBLE_FORMAT = "bp-train-ensemble/1"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest of 100 members is a few KiB
MAX_MEMBERS = 100
MEMBER_NAME = re.compile(r"seed-\d{1,10}")


def member_name(seed: int) -> str:
    return f"seed-{seed}"


def is_ensemble(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def write_manifest(folder: Path, seeds: list[int], config_dict: dict) -> None:
    text = (
        "# An ensemble written by `bp-train fit --seeds`: one run folder per member, the members' class\n"
        "# probabilities averaged wherever this folder is given as --model.\n"
        + yaml.safe_dump(
            {"format": ENSEMBLE_FORMAT, "members": [member_name(s) for s in seeds], "config": config_dict},
            sort_keys=False,
        )
    )
    write_text(Path(folder) / MANIFEST, text)


def read_manifest(folder: Path) -> dict:
    """{"members": [names], "config": dict} of an ensemble folder, checked; ModelFileError otherwise."""
    path = Path(folder) / MANIFEST
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the ensemble's manifest ({exc.strerror or exc})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ModelFileError(f"{path}: over {MAX_MANIFEST_BYTES:,} bytes; not an ensemble manifest bp-train wrote")
    try:
        manifest = safeyaml.load(data.decode("utf-8"))
    except BPTrainError as exc:  # an alias bomb, a duplicate key, nesting: said as what it is
        raise ModelFileError(f"{path}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != ENSEMBLE_FORMAT:
        raise ModelFileError(f"{path}: not an ensemble manifest (no 'format: {ENSEMBLE_FORMAT}' line)")
    members = manifest.get("members")
    if (
        not isinstance(members, list)
        or not 1 <= len(members) <= MAX_MEMBERS
        or not all(isinstance(m, str) and MEMBER_NAME.fullmatch(m) for m in members)
        or len(set(members)) != len(members)
    ):
        raise ModelFileError(f"{path}: 'members' must list 1 to {MAX_MEMBERS} different folders named seed-N")
    if not isinstance(manifest.get("config"), dict):
        raise ModelFileError(f"{path}: 'config' is missing; not an ensemble manifest bp-train wrote")
    return manifest


def unfinished(run_dir: Path) -> str | None:
    """Why a member's run is not done ('stopped after epoch 3 of 15'), or None when it is."""
    if not (run_dir / "checkpoint.npz").is_file():
        return "has no checkpoint.npz"
    done, planned, stopped_early = run_progress(run_dir)
    if done < planned and not stopped_early:
        return f"stopped after epoch {done} of {planned}"
    return None


def run_progress(run_dir: Path) -> tuple[int, int, bool]:
    """(epochs trained, epochs planned, stopped early) from a run's checkpoint.npz."""
    checkpoint = run_dir / "checkpoint.npz"
    meta = read_meta(checkpoint, kind="checkpoint")
    try:
        return (int(meta["run"]["epoch"]), int(meta["config"]["train"]["epochs"]), meta["run"]["stopped_early"] is True)
    except (KeyError, TypeError, ValueError):
        raise ModelFileError(f"{checkpoint}: its run state is not bp-train's") from None


def model_files(path: str | Path) -> list[tuple[str, Path]]:
    """(name, model file) for each model a --model path stands for: a model file, a run folder's model.npz,
    or every member of an ensemble folder, each of which must exist and have finished training."""
    path = Path(path)
    if not path.is_dir():
        return [(str(path), path)]
    if not is_ensemble(path):
        if (path / "model.npz").is_file():
            return [(str(path), path / "model.npz")]
        raise ModelFileError(
            f"{path}: a folder with neither model.npz (a run) nor {MANIFEST} (an ensemble); "
            "--model takes a model file, a run folder or an ensemble folder"
        )
    files = []
    for name in read_manifest(path)["members"]:
        member = path / name
        if (member / "model.npz").is_symlink() and (problem := unreadable(member / "model.npz", "model file")):
            raise ModelFileError(problem)
        if not (member / "model.npz").is_file():
            raise ModelFileError(
                f"{member}: the ensemble's member {name} has no model.npz (missing, or not yet "
                f"trained one epoch); train it with bp-train fit --resume {path}"
            )
        why = unfinished(member)
        if why:
            raise ModelFileError(
                f"{member}: the ensemble's member {name} {why}; finish it with bp-train fit --resume {member}"
            )
        files.append((str(member), member / "model.npz"))
    return files
