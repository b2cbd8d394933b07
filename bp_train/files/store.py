"""Files that must never be half-written: model files, checkpoints, metrics, submissions, caches.

Everything is written to a temporary file in the destination folder, flushed to disk, then renamed over the
destination -- except over an existing output that is not a regular file (a FIFO, a device, a symbolic
link), which is written to as it is and never replaced. A rename within a folder is atomic, so a reader (or a crash, or Ctrl-C, or a full disk) sees
either the old file or the new one, never a mixture.

Arrays are stored as an ordinary .npz: one array per name plus JSON metadata, so a file loads with
`np.load(path, allow_pickle=False)` and never runs code from it (model.py: the model files built on it).
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import BPTrainError, ModelFileError, unreadable

MODEL_FORMAT = "bp-train-model/1"


@contextmanager
def atomic_path(destination: str | os.PathLike):
    """Yield a temporary path beside `destination`; on success it replaces `destination` in one rename."""
    destination = Path(destination)
    if os.path.lexists(destination) and (destination.is_symlink() or not destination.is_file()):
        # An output that exists and is not a regular file -- a FIFO, a device, a link to /dev/stdout -- is
        # written to as it is, never replaced: run as root (containers, Kaggle, Colab), a rename over
        # `--out /dev/null` would put a regular file in place of the machine's /dev/null.
        if destination.is_dir():
            raise BPTrainError(f"{destination}: a folder, not a file to write")
        yield destination
        return
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
    except OSError as exc:  # a full disk or a vanished folder: name the file the user asked for
        if exc.filename not in (None, str(tmp), tmp):
            raise
        raise BPTrainError(f"{destination}: {exc.strerror or exc}; the previous file, if any, is unchanged") from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(destination: str | os.PathLike) -> None:
    """Raise BPTrainError now if atomic_path could not write `destination` later: a folder in its place,
    a missing or read-only folder. Nothing is created."""
    destination = Path(destination)
    if destination.is_dir():
        raise BPTrainError(f"{destination}: a folder, not a file to write")
    if os.path.lexists(destination) and (destination.is_symlink() or not destination.is_file()):
        if not os.access(destination, os.W_OK):
            raise BPTrainError(f"{destination}: not writable")
        return  # written as it is (a FIFO, a device, a link)
    folder = destination.parent
    if not folder.is_dir():
        raise BPTrainError(f"{destination}: the folder {str(folder) or '.'!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise BPTrainError(f"{destination}: the folder {str(folder) or '.'!r} is not writable")


def remove_orphaned_temporaries(folder: Path) -> None:
    """Delete temporary files left in `folder` by a process that was killed mid-write (SIGKILL, power
    loss); those of a process still running are left alone."""
    for tmp in Path(folder).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs (ours or someone else's): a temporary or staging folder named
    after it may still be in use."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return True


def write_text(destination: str | os.PathLike, content: str) -> None:
    with atomic_path(destination) as tmp:
        Path(tmp).write_text(content, encoding="utf-8")


def save_arrays(destination: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """An .npz of `arrays` plus `meta` as JSON under the key `meta`, written atomically."""
    with atomic_path(destination) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)


def load_arrays(path: str | os.PathLike, kind: str = "model", check=None) -> tuple[dict[str, np.ndarray], dict]:
    """Read an .npz written by `save_arrays`, refusing anything else (and never unpickling).

    The arrays' names, dtypes and shapes are read from their headers first, and `check(headers, meta)`
    may refuse the file from those alone, before any array's data is read: a small crafted file cannot
    make bp-train allocate gigabytes. Arrays must hold finite numbers."""
    path = Path(path)
    if problem := unreadable(path, f"{kind} file"):
        raise ModelFileError(problem)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic[:1] == b"\x80" or (magic.startswith(b"\x93NUMPY") and _holds_objects(path)):
        raise ModelFileError(
            f"{path}: the file contains pickled Python objects; refused, since loading them could run arbitrary code"
        )
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: not a bp-train {kind} file (not an .npz archive)")
    try:
        headers = _headers(path, kind)
        with np.load(path, allow_pickle=False) as archive:
            meta = _meta(archive, headers, path, kind)
            if check is not None:
                check(headers, meta)
            arrays = {name: archive[name] for name in headers if name != "meta"}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(
                f"{path}: the file contains pickled Python objects; refused, since loading "
                "them could run arbitrary code"
            ) from None
        raise ModelFileError(f"{path}: not a bp-train {kind} file, or truncated ({exc})") from None
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ModelFileError(
                f"{path}: array '{name}' holds NaN or infinite values; refused (a diverged "
                "or damaged model predicts nothing useful)"
            )
    return arrays, meta


def read_meta(path: str | os.PathLike, kind: str = "model") -> dict:
    """The JSON metadata of a file written by `save_arrays`, without reading any array's data."""

    class Enough(Exception):
        pass

    found = {}

    def keep(headers, meta):
        found.update(meta)
        raise Enough

    try:
        load_arrays(path, kind, check=keep)
    except Enough:
        pass
    return found


def _headers(path: Path, kind: str) -> dict[str, tuple[tuple, np.dtype]]:
    """{array name: (shape, dtype)} from the .npy headers inside the archive, without reading any data."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ModelFileError(f"{path}: not a bp-train {kind} file (it holds '{name[:60]}', not an array)")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ModelFileError(
                    f"{path}: array '{name[:-4][:60]}' is compressed; bp-train writes plain .npz "
                    f"files (made by another program?)"
                )
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(member)
            if dtype.hasobject:
                raise ModelFileError(
                    f"{path}: the file contains pickled Python objects; refused, since loading "
                    "them could run arbitrary code"
                )
            expected = "U" if name == "meta.npy" else "fiub"
            if dtype.kind not in expected:
                raise ModelFileError(
                    f"{path}: array '{name[:-4][:60]}' has dtype {dtype}; expected "
                    f"{'text' if expected == 'U' else 'numbers'}"
                )
            headers[name[:-4]] = (shape, dtype)
    return headers


def _meta(archive, headers: dict, path: Path, kind: str) -> dict:
    """The JSON metadata every bp-train file carries, checked for its format line."""
    if "meta" not in headers or headers["meta"][0] != ():
        raise ModelFileError(
            f"{path}: not a bp-train {kind} file (made by another program?): no '{MODEL_FORMAT}' header"
        )
    try:
        meta = json.loads(str(archive["meta"]))
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(
            f"{path}: not a bp-train {kind} file (made by another program?): no '{MODEL_FORMAT}' header"
        )
    return meta


def _holds_objects(path: Path) -> bool:
    """Whether a bare .npy file stores Python objects (pickles), read from its header alone."""
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )(handle)
        except ValueError:
            return False
    return header[2].hasobject
