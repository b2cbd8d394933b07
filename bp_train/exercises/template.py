"""Exercise files: bp-train's own class, copied out of the lesson, with its backward pass left blank
(`exercise new`) or as it is (`exercise solution`). Made from the lesson's source, so the exercise is
always the very class that trains the networks."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

from .catalog import Exercise

HEADER = '''"""Exercise {name}: write the backward pass of {cls}.

Forward is done: it computes the output and keeps what backward needs. Write `backward` so that

    bp-train exercise check {name} --file {file}

passes: it runs the class through a hand-worked example, then compares every gradient backward gives
with central differences (gradcheck), and says which one is wrong, by how much, and why it might be.
"""

'''


def class_source(exercise: Exercise) -> str:
    """The source of bp-train's own class, as the lesson has it."""
    return textwrap.dedent(inspect.getsource(getattr(importlib.import_module(exercise.module), exercise.cls)))


def blank_backward(source: str, exercise: Exercise) -> str:
    """`source` with the body of `backward` replaced by the derivative to implement and a NotImplementedError."""
    tree = ast.parse(source)
    backward = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "backward")
    lines = source.splitlines()
    indent = " " * (backward.col_offset + 4)
    wrapped = textwrap.fill(
        exercise.derivative, width=108, initial_indent=indent + '"""', subsequent_indent=indent
    ).splitlines()
    body = [*wrapped, f'{indent}"""', f'{indent}raise NotImplementedError("write {exercise.cls}.backward")']
    first = backward.body[0].lineno - 1  # our backward methods have no docstring: the body is the maths
    return "\n".join(lines[:first] + body + lines[backward.end_lineno :]) + "\n"


def helper_source(dotted: str) -> str:
    """The source of one of the lesson's functions, `bp_train.nn.conv.im2col`, to copy into the file."""
    module, name = dotted.rsplit(".", 1)
    return textwrap.dedent(inspect.getsource(getattr(importlib.import_module(module), name)))


def exercise_file(exercise: Exercise, solved: bool, file: str = "FILE.py") -> str:
    """The whole file: the header, NumPy, the lesson's functions the class calls, and the class. It
    imports nothing of bp-train: a student's file runs wherever NumPy does."""
    source = class_source(exercise)
    imports = "\n".join(("import numpy as np", *exercise.imports))
    helpers = "".join(helper_source(name) + "\n\n" for name in exercise.helpers)
    body = source if solved else blank_backward(source, exercise)
    return HEADER.format(name=exercise.name, cls=exercise.cls, file=file) + imports + "\n\n\n" + helpers + body
