"""What every `bp-train` command shares: exit codes, the error-to-exit-code group, common options."""

from __future__ import annotations

import functools
import json

import click

from ..errors import (  # cheap: a Ctrl-C while heavy modules load is caught below
    BPTrainError,
    Interrupted,
    release_ctrl_c,
)
from ..nn.errors import NetworkError  # the lesson's one error: as cheap (nn/__init__ imports nothing)

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(click.ClickException):
    exit_code = EXIT_BAD_INPUT


class OneLineUsage(click.UsageError):
    """A usage error as one line -- what was wrong and where the help is -- where click prints the usage
    and a hint above it: any bad input is one line."""

    def show(self, file=None):
        command = self.ctx.command_path if self.ctx is not None else "bp-train"
        click.echo(f"Error: {self.format_message()} (see {command} --help)", err=True)


def one_line(exc: click.UsageError) -> click.UsageError:
    """The usage error as one line, but a group called bare (`bp-train data`) still shows its help."""
    if isinstance(exc, OneLineUsage) or type(exc).__name__ == "NoArgsIsHelpError":
        return exc
    return OneLineUsage(exc.format_message(), exc.ctx)


class Group(click.Group):
    """Turns the project's own errors into one line on stderr and exit code 2 -- never a traceback."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx):
        try:
            release_ctrl_c()  # held by the launcher until here: a press during start-up ends as exit 130
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise one_line(exc) from None
        except (BPTrainError, NetworkError) as exc:
            raise BadInput(str(exc)) from None
        except Interrupted as exc:
            click.echo(f"bp-train: {exc}", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            click.echo("bp-train: interrupted; no output was left half-written", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # the reader went away (`bp-train show ... | head`): stop quietly, as Unix tools do
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except MemoryError:
            raise BadInput("out of memory: use a smaller network, batch or data file") from None
        except RecursionError:
            raise BadInput("the input is nested too deeply to read") from None
        except RuntimeError as exc:  # pathlib's resolve() of a link in a loop (Python < 3.13)
            if not str(exc).startswith("Symlink loop"):
                raise
            where = str(exc).split(" from ", 1)[-1].strip("'")
            raise BadInput(f"{where}: a symbolic link in a loop (it leads back to itself)") from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise BadInput(f"{where}{exc.strerror or exc}") from None
        except ValueError as exc:
            if "null byte" not in str(exc):  # what the OS refuses in a path; any other ValueError is a bug
                raise
            raise BadInput("a path or value contains a NUL byte (\\x00), which no file name can hold") from None


class FiniteFloat(click.ParamType):
    """A float option that refuses nan and inf (and, with `low`, values at or below it) as a usage error."""

    name = "number"

    def __init__(self, low: float | None = None, high: float | None = None):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and number <= self.low:
            self.fail(f"{value!r} is not above {self.low:g}", param, ctx)
        if self.high is not None and number > self.high:
            self.fail(f"{value!r} is more than {self.high:g}", param, ctx)
        return number


SEED = click.IntRange(0, 2**32 - 1)  # what NumPy's generators accept


def parse_seeds(text: str, option: str = "--seeds", most: int = 10) -> list[int]:
    """'0,1,2' -> [0, 1, 2]: different whole numbers NumPy accepts as seeds, one to `most` of them, written
    in ASCII digits alone (Python's int() would also take '1_0' and other scripts' digits)."""
    parts = [s.strip() for s in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise BadInput(f"{option} {text[:40]!r}: expected whole numbers separated by commas, e.g. 0,1")
    chosen = [int(part) for part in parts]
    if len(set(chosen)) != len(chosen):
        repeated = next(seed for seed in chosen if chosen.count(seed) > 1)
        raise BadInput(f"{option} {text[:40]!r}: seed {repeated} is given twice; each member needs a seed of its own")
    if not chosen or max(chosen) > 2**32 - 1 or len(chosen) > most:
        raise BadInput(f"{option} {text[:40]!r}: one to {most} seeds between 0 and {2**32 - 1}")
    return sorted(chosen)


def refuse_overwriting(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Exit 2 if an output names one of the command's inputs (by any spelling: relative, absolute, a symlink)
    or two outputs name the same file."""
    import os

    def same(a, b):
        try:
            return os.path.samefile(a, b)
        except OSError:
            return os.path.realpath(a) == os.path.realpath(b)

    named = [(option, path) for option, path in outputs.items() if path]
    for option, path in named:
        for what, source in inputs.items():
            if source and os.path.exists(source) and same(path, source):
                raise BadInput(f"{option} {path} is the {what} this command reads; refusing to overwrite it")
    for i, (option, path) in enumerate(named):
        for other, second in named[i + 1 :]:
            if same(path, second):
                raise BadInput(f"{option} and {other} both name {path}; give two different files")


def emit_json(figures: dict) -> None:
    click.echo(json.dumps(figures, indent=2, default=float))


def threads_option(f):
    """--threads N: BLAS threads for the command (default: chosen from the free cores, see threads.py).
    The choice is made once, before the command runs, and stored in ctx.meta["threads"]."""

    @functools.wraps(f)
    def wrapper(*args, threads=None, **kwargs):
        from ..machine.threads import blas_threads, choose_threads

        choice = choose_threads(threads)
        click.get_current_context().meta["threads"] = choice
        with blas_threads(choice.threads):
            return f(*args, **kwargs)

    return click.option(
        "--threads",
        type=click.IntRange(1, 1024),
        metavar="N",
        help="Threads for the matrix products (default: the cores not kept busy by other "
        "processes, measured at start). The same seed gives the same weights only with "
        "the same thread count.",
    )(wrapper)


def cache_option(f):
    return click.option(
        "--no-cache",
        "no_cache",
        is_flag=True,
        help="Always parse the CSV; do not read or write the parsed-array cache.",
    )(f)


def models_option(required: bool = True):
    """--model (repeatable: files, run folders, ensemble folders, averaged) and --tta, for the commands that
    read digits with a trained network."""

    def decorate(f):
        f = click.option(
            "--tta",
            is_flag=True,
            help="Test-time augmentation: average each digit's probabilities over the digit, four copies "
            "moved one pixel left, right, up and down, and two turned 8 degrees (7x the time).",
        )(f)
        return click.option(
            "--model",
            "model_paths",
            multiple=True,
            required=required,
            type=click.Path(),
            help="A model.npz written by fit, a run folder, or an ensemble folder (fit --seeds). "
            "Repeat it to average several models' probabilities (soft voting).",
        )(f)

    return decorate


def device_option(f):
    """--device cpu|cuda: where the arrays live (backend.py)."""
    return click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        help="Compute on the CPU (NumPy) or an NVIDIA GPU (cuda: CuPy, from the checkout "
        ".venv/bin/python -m pip install -e '.[gpu]'). Default: the config's train.device for commands that read a "
        "config, else cpu.",
    )(f)
