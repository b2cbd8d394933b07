"""What every `bp-train` command shares: exit codes, the error-to-exit-code group, common options."""

from __future__ import annotations

import functools
import json

import click

from .errors import BPTrainError

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(click.ClickException):
    exit_code = EXIT_BAD_INPUT


class Group(click.Group):
    """Turns the project's own errors into one line on stderr and exit code 2 -- never a traceback."""

    def invoke(self, ctx):
        from .train import Interrupted
        try:
            return super().invoke(ctx)
        except BPTrainError as exc:
            raise BadInput(str(exc)) from None
        except Interrupted as exc:
            click.echo(f"bp-train: {exc}", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except MemoryError:
            raise BadInput("out of memory: use a smaller network, batch or data file") from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise BadInput(f"{where}{exc.strerror or exc}") from None


def emit_json(figures: dict) -> None:
    click.echo(json.dumps(figures, indent=2, default=float))


def threads_option(f):
    """--threads N: BLAS threads for the command (default: chosen from the free cores, see threads.py).
    The choice is made once, before the command runs, and stored in ctx.meta["threads"]."""
    @functools.wraps(f)
    def wrapper(*args, threads=None, **kwargs):
        from .threads import blas_threads, choose_threads

        choice = choose_threads(threads)
        click.get_current_context().meta["threads"] = choice
        with blas_threads(choice.threads):
            return f(*args, **kwargs)
    return click.option("--threads", type=click.IntRange(1), metavar="N",
                        help="Threads for the matrix products (default: the cores not kept busy by other "
                             "processes, measured at start). The same seed gives the same weights only with "
                             "the same thread count.")(wrapper)


def cache_option(f):
    return click.option("--no-cache", "no_cache", is_flag=True,
                        help="Always parse the CSV; do not read or write the parsed-array cache.")(f)


