"""`bp-train exercise`: write a layer's backward pass yourself, then have it checked."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .common import BadInput, FiniteFloat, Group, emit_json


def _exercise(name: str):
    from ..exercises.catalog import EXERCISES

    if name not in EXERCISES:
        raise BadInput(f"no exercise {name[:40]!r}; `bp-train exercise list` names them: {', '.join(EXERCISES)}")
    return EXERCISES[name]


def default_file(name: str) -> str:
    return name.replace("-", "_") + ".py"


@click.group(cls=Group)
def exercise():
    """Write the backward pass of one of the lesson's layers yourself, and check it against a hand-worked
    example and central differences.

    \b
    Example:
      bp-train exercise new relu            writes relu.py: ReLU with its backward left to write
      bp-train exercise check relu          checks relu.py, says which gradient is wrong and why it might be
      bp-train exercise solution relu       bp-train's own ReLU, in the same form
    """


@exercise.command("list")
def list_exercises():
    """The exercises, in the order the lesson teaches them."""
    from ..exercises.catalog import EXERCISES, TOPICS

    for name, item in EXERCISES.items():
        click.echo(f"{name:<18} {item.cls:<16} {TOPICS[name]}")
    click.echo("\nbp-train exercise new NAME writes NAME.py to start from; bp-train exercise check NAME checks it")


@exercise.command()
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write NAME.py into (it is never overwritten).",
)
def new(name, folder):
    """Write NAME.py: the layer's class with forward done and backward left to write."""
    from ..exercises.template import exercise_file

    item = _exercise(name)
    path = Path(folder) / default_file(name)
    text = exercise_file(item, solved=False, file=str(path))
    try:
        # O_EXCL: created here or not at all -- a student's file (or anything else there) is never replaced
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise BadInput(f"{path} exists; it may hold your work, so it is left alone (give --dir, or move it)") from None
    except OSError as exc:
        raise BadInput(f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"wrote {path}: write {item.cls}.backward, then run: bp-train exercise check {name} --file {path}")


@exercise.command()
@click.argument("name")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="Your file (default: NAME.py here).")
@click.option(
    "--timeout",
    default=20.0,
    show_default=True,
    type=FiniteFloat(low=0, high=600),
    help="Seconds the check may take before it is stopped (an endless loop): above 0, at most 600.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON object.")
def check(name, path, timeout, as_json):
    """Check your backward pass: the worked example, then every gradient against central differences.

    Exit code 0 when it passes, 1 when a gradient is wrong or your code fails, 2 when the file is not
    Python."""
    from ..exercises.check import check_file

    _exercise(name)
    path = path or default_file(name)
    if not Path(path).is_file():
        raise BadInput(f"{path}: no such file; `bp-train exercise new {name}` writes one to start from")
    verdict = check_file(name, str(Path(path).resolve()), timeout)
    if as_json:
        emit_json(verdict)
    else:
        click.echo(verdict["line"], err=verdict["code"] != 0)
    raise SystemExit(verdict["code"])


@exercise.command()
@click.argument("name")
def solution(name):
    """Print bp-train's own layer in the exercise's form (a file `exercise check` accepts)."""
    from ..exercises.template import exercise_file

    click.echo(exercise_file(_exercise(name), solved=True, file=default_file(name)), nl=False)
