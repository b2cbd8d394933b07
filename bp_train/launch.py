"""The `bp-train` executable. It imports the command line (NumPy, pandas, click: a fraction of a second)
inside a guard, so that Ctrl-C even then ends with one line and exit code 130, never a traceback; once the
commands run, cli_common.Group handles it."""

import sys


def main() -> None:
    try:
        from .cli import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write("bp-train: interrupted\n")
        raise SystemExit(130) from None
    command_line(prog_name="bp-train")
