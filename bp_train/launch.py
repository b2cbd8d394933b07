"""The `bp-train` executable. It imports the command line (NumPy, pandas, click: a fraction of a second)
with Ctrl-C only recorded, then honoured: a KeyboardInterrupt raised inside a compiled module's import can
be swallowed there (seen: pandas' Cython init, in an ABC subclass check), and the command would then run as
if nothing had been pressed. Once the commands run, cli_common.Group handles Ctrl-C."""

import signal
import sys


def main() -> None:
    pressed = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:  # a background job started with Ctrl-C ignored keeps it so
        signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        from .cli import main as command_line
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        sys.stderr.write("bp-train: interrupted\n")
        raise SystemExit(130)
    command_line(prog_name="bp-train")
