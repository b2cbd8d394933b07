"""The `bp-train` executable. It imports the command line (NumPy, pandas, click: a fraction of a second)
with Ctrl-C only recorded, then honoured: a KeyboardInterrupt raised inside a compiled module's import can
be swallowed there (seen: pandas' Cython init, in an ABC subclass check), and the command would then run as
if nothing had been pressed. Once the commands run, cli_common.Group handles Ctrl-C."""

import sys

from .errors import ctrl_c_held  # a small module: the imports worth guarding come below


def main() -> None:
    try:
        with ctrl_c_held():
            from .cli.main import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write("bp-train: interrupted\n")
        raise SystemExit(130) from None
    command_line(prog_name="bp-train")
