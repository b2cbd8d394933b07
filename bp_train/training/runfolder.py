"""Run folders that stay true: which folder a `fit` writes, one writer at a time, nothing lost silently.

The rule:
  * `fit` without --out writes runs/<name>/, or runs/<name>-2/, -3, ... when that already holds a run, so
    every experiment keeps its own folder (as Lightning's and Ultralytics' numbered runs do).
  * `fit --out DIR` refuses a DIR that already holds a run unless --overwrite is given. An overwrite trains
    in a staging folder beside DIR and swaps it in only once the new run has something to show (its first
    epoch saved); any failure before that leaves DIR exactly as it was.
  * `fit --resume DIR` goes on writing DIR.
  * One writer per folder: the writer holds an exclusive lock on DIR/.lock; a second one is refused with
    the folder and the holder named.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import glob
import os
import shutil
import socket
from pathlib import Path

from ..errors import BPTrainError
from ..files.store import process_alive

LOCK_NAME = ".lock"
# What fit and plot write into a run folder. --overwrite replaces a folder holding only these: never a
# folder with anything else in it (a project, a home folder, the current directory).
RUN_FILES = {"config.yaml", "metrics.csv", "model.npz", "checkpoint.npz", LOCK_NAME}
RUN_SUFFIXES = (".png", ".tmp")


class FolderBusy(BPTrainError):
    """Another process writes the folder."""


def holds_run(folder: Path) -> bool:
    """True if `folder` exists and has anything in it but a lock file."""
    return folder.is_dir() and any(entry.name != LOCK_NAME for entry in folder.iterdir())


class FolderLock:
    """An exclusive flock on FOLDER/.lock, naming its holder inside the file. The lock follows the folder
    if the folder is renamed (it is held on the open file, not on the path)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        path = self.folder / LOCK_NAME
        while True:
            try:  # never through a link: a .lock that is a symbolic link would truncate whatever it points to
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                if os.path.islink(path) or exc.errno == errno.ELOOP:
                    raise BPTrainError(
                        f"{path} is a symbolic link, not bp-train's lock; remove it, or write another folder"
                    ) from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise FolderBusy(
                    f"{self.folder} is being written by {holder}; wait for it to finish, or write another folder"
                ) from None
            # A holder that was finishing may have deleted the file between our open and our lock: then
            # we hold a lock on a file nobody else can see, and must lock the path anew.
            try:
                if os.path.samestat(os.fstat(fd), os.stat(path)):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"bp-train fit (pid {os.getpid()} on {socket.gethostname()}, since {started})\n".encode())
        self.fd = fd
        return self

    def release(self, remove: bool = True) -> None:
        if self.fd is None:
            return
        if remove:
            try:
                os.unlink(self.folder / LOCK_NAME)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = None


class RunFolder:
    """The folder one `fit` writes, locked while it does. `path` is where the run's files go now; the
    trainer calls `epoch_saved()` after each saved epoch, which swaps a staged overwrite into place.
    Use as a context manager: on leaving, the lock is released and an overwrite that never got to show
    anything is removed, leaving the previous run untouched."""

    def __init__(
        self,
        target: Path,
        lock: FolderLock,
        staging: Path | None = None,
        staging_lock: FolderLock | None = None,
        created: bool = False,
        parent_created: bool = False,
    ):
        self.target = target
        self.lock = lock
        self.staging = staging
        self.staging_lock = staging_lock
        self.created = created  # we made the folder: remove it again if the run leaves nothing in it
        self.parent_created = parent_created  # and its parent (runs/), likewise

    @property
    def pending(self) -> bool:
        """True while an overwrite has not yet replaced the previous run."""
        return self.staging is not None

    @property
    def path(self) -> Path:
        return self.staging if self.staging is not None else self.target

    def epoch_saved(self) -> Path:
        """Called after each saved epoch: the first one swaps a staged overwrite into place. Returns `path`."""
        if self.staging is None:
            return self.target
        old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
        os.rename(self.target, old)
        try:
            os.rename(self.staging, self.target)
        except OSError as exc:
            os.rename(old, self.target)
            raise BPTrainError(
                f"could not put the new run in place of {self.target} ({exc.strerror}); the "
                f"previous run is untouched, the new one is in {self.staging}"
            ) from None
        # The staging lock now lives at target/.lock; the old run's lock goes with the old files.
        self.lock.release(remove=False)
        self.lock, self.staging_lock, self.staging = self.staging_lock, None, None
        self.lock.folder = self.target
        shutil.rmtree(old, ignore_errors=True)
        return self.target

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.staging is not None:
            self.staging_lock.release()
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self.lock.release()
        if self.created and self.target.is_dir() and not holds_run(self.target):
            try:
                self.target.rmdir()
                if self.parent_created:
                    self.target.parent.rmdir()
            except OSError:
                pass  # someone put something there meanwhile: leave it


def is_run(folder: Path) -> bool:
    """Whether `folder` holds a fit run: its config.yaml or checkpoint.npz."""
    return (folder / "checkpoint.npz").exists() or (folder / "config.yaml").exists()


def check_replaceable(target: Path) -> None:
    """Refuse, as --out, a folder that is not a bp-train run: one holding anything but what fit and plot
    write (a subfolder, other files), or the folder we stand in or one holding it."""
    here, resolved = Path.cwd().resolve(), target.resolve()
    if resolved == here or resolved in here.parents:
        raise BPTrainError(
            f"--out {target} is the current folder or holds it; give a folder of its own for the "
            "run, e.g. --out runs/NAME"
        )
    foreign = sorted(
        entry.name
        for entry in target.iterdir()
        if entry.is_dir() or not (entry.name in RUN_FILES or entry.name.endswith(RUN_SUFFIXES))
    )
    if foreign or not is_run(target):
        what = f"holds {foreign[0]!r}, which" if foreign else "has no config.yaml or checkpoint.npz: it"
        raise BPTrainError(
            f"--out {target} {what} is not part of a bp-train run; --out takes a new or empty "
            "folder, or a run folder (which --overwrite may replace)"
        )


def claim_empty(folder: Path) -> RunFolder | None:
    """Lock `folder` if it is free (missing or empty and unlocked); None if it holds a run or is in use."""
    created, parent_created = False, not folder.parent.exists()
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
            created = True
        except FileExistsError:
            pass
    if not folder.is_dir() or holds_run(folder):
        return None
    try:
        lock = FolderLock(folder).acquire()
    except FolderBusy:
        return None
    if holds_run(folder):  # filled between our look and our lock
        lock.release()
        return None
    return RunFolder(folder, lock, created=created, parent_created=parent_created)


def claim_out(target: Path) -> RunFolder | None:
    """--out DIR locked for a new run if it is new or empty; None if it holds something; a file refused.
    What a killed --overwrite of DIR left beside it is cleared first (it may put the previous run back)."""
    if target.exists() and not target.is_dir():
        raise BPTrainError(f"--out {target} is a file, not a folder")
    remove_abandoned_swaps(target)
    return None if holds_run(target) else claim_empty(target)


def numbered_folder(base: Path) -> RunFolder:
    """runs/<name>/, or the first of runs/<name>-2/, -3, ... that holds no run."""
    for number in range(1, 100_000):
        folder = base if number == 1 else base.with_name(f"{base.name}-{number}")
        claimed = claim_empty(folder)
        if claimed is not None:
            return claimed
    raise BPTrainError(f"{base.parent}: 100,000 numbered runs of {base.name}; clear some out")


def remove_abandoned_swaps(target: Path) -> None:
    """Clear what an --overwrite killed mid-way (kill -9, power loss) left beside `target`: its staging
    folder .NAME.new-PID is deleted; its .NAME.old-PID, the previous run, is put back if the swap never
    finished (no `target`), else deleted. Those of a process still running are its own, and left alone."""
    leftovers = sorted(target.parent.glob(f".{glob.escape(target.name)}.*-*"), key=lambda p: "new" in p.name)
    for leftover in leftovers:  # the old runs first: one may have to be put back
        kind, _, pid = leftover.name[len(target.name) + 2 :].partition("-")
        if kind not in ("new", "old") or not pid.isdigit() or process_alive(int(pid)):
            continue
        if kind == "old" and not os.path.lexists(target):
            os.rename(leftover, target)
        elif leftover.is_symlink() or not leftover.is_dir():
            leftover.unlink(missing_ok=True)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def check_own_files(folder: Path) -> None:
    """A run's own files are written in place, and only there: one that is a link (or not a regular file)
    would have a resumed run write into whatever it points at -- another run, someone's file."""
    for name in sorted(RUN_FILES - {LOCK_NAME}):
        path = folder / name
        if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
            raise BPTrainError(
                f"{path} is {'a link' if path.is_symlink() else 'not a regular file'}; a run writes its own "
                "files in place, never through a link: put the file itself there to resume this run"
            )


def open_run_folder(
    out: str | Path | None,
    name: str,
    overwrite: bool = False,
    resume: str | Path | None = None,
    runs: Path = Path("runs"),
) -> RunFolder:
    """The locked folder a `fit` writes: see the module's docstring for the rule."""
    if resume is not None:
        check_own_files(Path(resume))
        return RunFolder(Path(resume), FolderLock(Path(resume)).acquire())
    if out is None:
        return numbered_folder(runs / name)
    target = Path(out)
    if target.is_symlink() and target.is_dir():
        # a link to a run folder: the run is replaced where it lives, and the link still leads to it
        target = target.resolve()
    claimed = claim_out(target)
    if claimed is not None:
        return claimed
    check_replaceable(target)  # before anything is written into it, a lock file included
    lock = FolderLock(target).acquire()  # a busy folder is refused here, naming its writer
    if not overwrite:
        lock.release()
        raise BPTrainError(
            f"--out {target} already holds a run; pass --overwrite to replace it (once the new "
            f"run has finished its first epoch), --resume {target} to continue it, or leave out "
            "--out to get a new numbered folder"
        )
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return RunFolder(target, lock, staging=staging, staging_lock=FolderLock(staging).acquire())


def member_run_folder(member: Path, name: str, resuming: bool, overwrite: bool):
    """The locked run folder a member trains in, in the ensemble's process or in a worker of its own (members.py)."""
    if member.is_symlink():  # an ensemble's member is its own folder: never another run it points at
        raise BPTrainError(f"{member} is a link; an ensemble's members are folders of its own, written in place")
    return (
        open_run_folder(None, name, resume=member) if resuming else open_run_folder(member, name, overwrite=overwrite)
    )
