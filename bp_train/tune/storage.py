"""Where a study lives: a journal file in its folder, or a database; each checked before Optuna opens it.

A damaged journal or SQLite file is refused with one line and never written to (Optuna would append to it
and keep it broken); a study folder records which storage its results come from, so that a second storage
for the same study name cannot replace its trials.csv.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

from ..errors import BPTrainError
from ..files.store import write_text

DB_SCHEMES = ("postgresql", "mysql", "sqlite")


def require_optuna():
    try:
        import optuna
    except ImportError:
        raise BPTrainError(
            "bp-train tune needs Optuna, an optional extra: from the bp-train checkout, "
            ".venv/bin/python -m pip install -e '.[tune]' "
            "(make install includes it)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def lost_the_schema_race(exc: Exception) -> bool:
    """Whether opening a database failed only because another worker was creating Optuna's schema at the
    same moment: a duplicate row (IntegrityError), or a table or type "already exists" (PostgreSQL says
    DuplicateTable / DuplicateObject, MySQL error 1050; SQLAlchemy wraps them as other DBAPI errors)."""
    from sqlalchemy.exc import DBAPIError, IntegrityError

    return isinstance(exc, IntegrityError) or (isinstance(exc, DBAPIError) and "already exists" in str(exc))


STORAGE_NOTE = "storage.txt"  # which storage the folder's files (trials.csv, best.yaml) come from


def storage_label(url: str | None) -> str:
    """The storage as the folder records it: 'journal' or the URL without its user and password."""
    if url is None:
        return "journal"
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@')[-1]}"


def check_study_folder(folder: Path, url: str | None) -> None:
    """A study folder holds one storage's results: a second storage for the same study name would replace
    trials.csv with its own trials. Refused, naming both, before either storage is opened."""
    note = folder / STORAGE_NOTE
    label = storage_label(url)
    if note.is_file():
        recorded = note.read_text(encoding="utf-8", errors="replace").strip()[:200]
        if recorded != label:
            raise BPTrainError(
                f"{folder} holds the study of the storage {recorded}, not {label}; give --study "
                "another name for a study in another storage"
            )
    elif (folder / "journal.log").exists() and url is not None:
        raise BPTrainError(
            f"{folder} holds the results of another storage (the journal file); give --study "
            "another name for a study in this one"
        )


def record_storage(folder: Path, url: str | None) -> None:
    """Once the storage has opened: which one the folder's results come from."""
    if not (folder / STORAGE_NOTE).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / STORAGE_NOTE, storage_label(url) + "\n")


def damaged(path: Path, what: str) -> BPTrainError:
    return BPTrainError(
        f"{path}: {what}; the study is damaged and was not touched (Optuna would append to it "
        "and keep it broken): move the file away to start the study anew, or restore it from a copy"
    )


def check_journal(path: Path) -> None:
    """A journal file is one JSON record per line, each ending in a newline: refuse anything else (a
    garbage line, a last line cut short, random bytes, NUL padding) before Optuna reads or appends."""
    if not path.exists():
        return
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise damaged(path, f"NUL bytes at byte {nul:,}")
    if data and not data.endswith(b"\n"):
        raise damaged(path, "its last line is cut short (no newline at its end)")
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise damaged(path, f"line {number:,} is not a journal record")


def check_sqlite(path: Path) -> None:
    """An SQLite study file must pass SQLite's own integrity check before Optuna opens it."""
    import sqlite3

    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise damaged(path, "not an SQLite database")
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise damaged(path, f"SQLite cannot read it ({exc})") from None
    if verdict != "ok":
        raise damaged(path, f"SQLite's integrity check says: {str(verdict)[:100]}")


def open_storage(url: str | None, folder: Path):
    """Optuna storage: a journal file in the study's folder by default, else the database at `url`."""
    optuna = require_optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        folder.mkdir(parents=True, exist_ok=True)
        check_journal(folder / "journal.log")
        return JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    if url.startswith("sqlite:///"):
        check_sqlite(Path(url[len("sqlite:///") :]))
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in DB_SCHEMES:
        raise BPTrainError(
            f"--storage {url.split('@')[-1]}: expected a database URL (postgresql://user@host/db, "
            "mysql://..., sqlite:///file.db), or no --storage for a journal file in the study folder"
        )
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # "experimental" heartbeat
                    # A heartbeat lets a worker elsewhere find the trials of a killed worker and fail them.
                    return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
            except Exception as exc:
                # Workers started at once on an empty database race to create Optuna's tables and types;
                # the losers find them made on a second look.
                if attempt == 4 or not lost_the_schema_race(exc):
                    raise
                time.sleep(0.5 * (attempt + 1))
    except Exception as exc:  # the driver's own errors: connection refused, no such database, driver missing
        shown = url.split("@")[-1]  # never echo a password
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Failed to import DB access module" in detail or isinstance(exc, ModuleNotFoundError):
            detail = (
                f"its driver is not installed ({detail[:120]}); for PostgreSQL SQLAlchemy 2 wants psycopg "
                "(version 3): from the bp-train checkout, .venv/bin/python -m pip install -e '.[postgres]'"
            )
        raise BPTrainError(f"--storage ...@{shown}: cannot open the database ({detail[:200]})") from None
