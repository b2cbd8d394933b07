"""Files that must never be half-written: model files, checkpoints, metrics, submissions.

Everything is written to a temporary file in the destination folder, flushed to disk, then renamed over the
destination. A rename within a folder is atomic, so a reader (or a crash, or Ctrl-C, or a full disk) sees
either the old file or the new one, never a mixture.

A model file is an ordinary .npz: one array per parameter plus the resolved config as a JSON string, so it
loads with `np.load(path, allow_pickle=False)` and never runs code from the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import BPTrainError, ModelFileError

MODEL_FORMAT = "bp-train-model/1"


@contextmanager
def atomic_path(destination: str | os.PathLike):
    """Yield a temporary path beside `destination`; on success it replaces `destination` in one rename."""
    destination = Path(destination)
    folder = destination.parent
    if not folder.is_dir():
        raise BPTrainError(f"{destination}: the folder {str(folder) or '.'!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise BPTrainError(f"{destination}: the folder {str(folder) or '.'!r} is not writable")
    tmp = folder / f".{destination.name}.{os.getpid()}.tmp"
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def remove_orphaned_temporaries(folder: Path) -> None:
    """Delete temporary files left in `folder` by a process that was killed mid-write (SIGKILL, power
    loss); those of a process still running are left alone."""
    for tmp in Path(folder).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, someone else's


def write_text(destination: str | os.PathLike, content: str) -> None:
    with atomic_path(destination) as tmp:
        Path(tmp).write_text(content, encoding="utf-8")


def save_arrays(destination: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """An .npz of `arrays` plus `meta` as JSON under the key `meta`, written atomically."""
    with atomic_path(destination) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def load_arrays(path: str | os.PathLike, kind: str = "model") -> tuple[dict[str, np.ndarray], dict]:
    """Read an .npz written by `save_arrays`, refusing anything else (and never unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: {kind} file not found")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic[:1] == b"\x80" or (magic.startswith(b"\x93NUMPY") and _holds_objects(path)):
        raise ModelFileError(f"{path}: the file contains pickled Python objects; refused, since loading "
                             "them could run arbitrary code")
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: not a bp-train {kind} file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(f"{path}: the file contains pickled Python objects; refused, since loading "
                                 "them could run arbitrary code") from None
        raise ModelFileError(f"{path}: not a bp-train {kind} file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a bp-train {kind} file, or truncated ({exc})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        assert isinstance(meta, dict) and meta.get("format") == MODEL_FORMAT
    except (KeyError, ValueError, AssertionError):
        raise ModelFileError(f"{path}: not a bp-train {kind} file (made by another program?): "
                             f"no '{MODEL_FORMAT}' header") from None
    return arrays, meta


def _holds_objects(path: Path) -> bool:
    """Whether a bare .npy file stores Python objects (pickles), read from its header alone."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(handle)
        except ValueError:
            return False
    return header[2].hasobject


FINGERPRINT = "train_fingerprint"  # the hashes of the training rows (see data.fingerprints), if saved


def save_model(destination, network, config_dict: dict, extra: dict | None = None,
               fingerprint: np.ndarray | None = None) -> None:
    meta = {"format": MODEL_FORMAT, "config": config_dict, **(extra or {})}
    arrays = dict(network.state())
    if fingerprint is not None:
        arrays[FINGERPRINT] = fingerprint
    save_arrays(destination, arrays, meta)


def load_model(path):
    """Rebuild the network saved in a model file: (network, config, meta); meta["train_fingerprint"] holds
    the training rows' hashes (or None for a model saved without them)."""
    from .config import config_from_dict
    from .network import build_network

    arrays, meta = load_arrays(path)
    meta[FINGERPRINT] = arrays.pop(FINGERPRINT, None)
    try:
        config = config_from_dict(meta["config"], f"{path} (its saved config)")
    except (KeyError, TypeError):
        raise ModelFileError(f"{path}: the model file has no saved config") from None
    network = build_network(config, seed=0)
    missing = [key for key in network.state() if key not in arrays]
    wrong = [key for key, a in network.state().items() if key in arrays and arrays[key].shape != a.shape]
    if missing or wrong:
        raise ModelFileError(f"{path}: the arrays do not match the saved config "
                             f"({'missing ' + missing[0] if missing else 'wrong shape of ' + wrong[0]})")
    network.load_state(arrays)
    return network, config, meta
