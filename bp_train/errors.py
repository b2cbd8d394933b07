"""The project's own error types.

Every mistake a user can make (a bad config, a bad CSV, a missing or foreign model file) is raised as a
`BPTrainError` whose message is one sentence naming the file and the key, line, row or column at fault.
The CLI turns it into a one-line message and exit code 2; a library user can catch it as one type.
A Ctrl-C is not an error: `Interrupted` carries what was kept, and `ctrl_c_held` keeps one from landing
halfway through a step that must not be cut.
"""

import signal
import threading
from contextlib import contextmanager


class BPTrainError(Exception):
    """Bad input: the message says which file, where in it, and what was expected."""


class ConfigError(BPTrainError):
    """A YAML config, or an override of one, is invalid."""


class DataError(BPTrainError):
    """A data file (CSV or IDX) is missing, malformed or out of range."""


class ModelFileError(BPTrainError):
    """A model file is missing, truncated, foreign or unsafe to load."""


class DivergenceError(BPTrainError):
    """Training produced a NaN or infinite loss."""


def unreadable(path, kind: str = "file") -> str | None:
    """Why `path` is not a regular file to read -- 'config file not found', 'a FIFO, not a regular file',
    'a symbolic link in a loop' -- or None when it is one. A FIFO or a device would block a read or
    never end it; a link's problem is named as a link's."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            if exc.errno == 40:  # ELOOP
                return f"{path}: a symbolic link in a loop (it leads back to itself), not a {kind}"
            return f"{path}: a symbolic link to {os.readlink(path)!r}, which does not exist"
        if exc.errno == 40:
            return f"{path}: a path through a symbolic link in a loop"
        return f"{path}: {kind} not found" if exc.errno == 2 else f"{path}: {exc.strerror}"
    if stat.S_ISREG(mode):
        return None
    what = (
        "a folder" if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
    )  # fmt: skip
    return f"{path}: {what}, not a regular {kind}"


class Interrupted(Exception):
    """Ctrl-C during a long command (fit, tune): carries the message that says what was kept and how to go on.
    Not bad input: the CLI ends it with exit code 130."""


@contextmanager
def ctrl_c_held():
    """Hold a Ctrl-C back while the block runs and raise it (KeyboardInterrupt) as the block ends: around a
    step that must not be cut halfway (an import that might swallow it, a trial's state being written).
    A Python-level handler, not a blocked signal: the signal may reach any thread, but its Python handler
    runs in the main one. Off the main thread, or where SIGINT is ignored (a background job), it does
    nothing."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


# The launcher holds Ctrl-C from its first import until a command starts running (cli/common.Group
# releases it inside the try that turns it into exit code 130): pressed in between -- while the imports
# run, or while click parses the options -- it would otherwise end in click's own "Aborted!" (exit 1).
_held: dict = {}


def hold_ctrl_c() -> None:
    """Record a Ctrl-C instead of raising it, until release_ctrl_c (main thread, SIGINT not ignored)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN or _held:
        return
    _held.update(previous=previous, pressed=False)
    signal.signal(signal.SIGINT, lambda *_: _held.__setitem__("pressed", True))


def release_ctrl_c() -> None:
    """Restore Ctrl-C, and raise the KeyboardInterrupt now if one was pressed while it was held."""
    if not _held or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _held.pop("previous"))
    if _held.pop("pressed"):
        raise KeyboardInterrupt
