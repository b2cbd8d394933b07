"""Checking a student's backward pass: the hand-worked example first, then every gradient against central
differences, and for a wrong one, a hint for the bug that typically produces it.

`run_check` runs in a process of its own (see `check_file`): the student's code may raise, loop forever
or print; a time limit and one line of JSON on the last line of stdout keep all that out of the tool.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import traceback

import numpy as np

from ..nn.gradient import numerical_gradient, parameter_error
from .catalog import EXERCISES, Exercise

TOLERANCE = 1e-6
EXIT_FAILED, EXIT_NOT_PYTHON = 1, 2


class Failed(Exception):
    """The check's verdict on a student's class: one line, and the exit code that goes with it."""

    def __init__(self, line: str, code: int = EXIT_FAILED):
        super().__init__(line)
        self.code = code


def load_class(exercise: Exercise, path: str):
    try:
        source = open(path, encoding="utf-8").read()
        compile(source, path, "exec")
    except (OSError, UnicodeDecodeError) as exc:
        raise Failed(f"{path}: cannot read it ({exc})", EXIT_NOT_PYTHON) from None
    except (SyntaxError, ValueError) as exc:
        raise Failed(
            f"{path}: not Python: {getattr(exc, 'msg', exc)} (line {getattr(exc, 'lineno', '?')})", EXIT_NOT_PYTHON
        ) from None
    spec = importlib.util.spec_from_file_location("student_exercise", path)
    module = importlib.util.module_from_spec(spec)
    guarded(lambda: spec.loader.exec_module(module), path, "importing the file")
    if not isinstance(getattr(module, exercise.cls, None), type):
        raise Failed(f"{path} defines no class {exercise.cls}; `bp-train exercise new {exercise.name}` writes one")
    return getattr(module, exercise.cls)


def guarded(step, path: str, doing: str):
    """Run a step of the student's code; an exception becomes one line naming it and the student's line."""
    try:
        return step()
    except NotImplementedError:
        raise Failed("backward is not written yet: replace its `raise NotImplementedError` with the gradient") from None
    except Failed:
        raise
    except Exception as exc:  # the student's bug, whatever it is
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        if frames:  # name the student's own function and line: "backward raised ... at relu.py line 28"
            doing = (
                f"{frames[-1].name} (in {doing})" if frames[-1].name not in ("backward", "forward") else frames[-1].name
            )
        where = f" at {path} line {frames[-1].lineno}" if frames else ""
        raise Failed(f"{doing} raised {type(exc).__name__}: {str(exc)[:200]}{where}") from None


def compare(what: str, got, expected, exercise: Exercise, context: str) -> None:
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape:
        raise Failed(f"{context}: {what} has shape {got.shape}, expected {expected.shape}{hint_for(exercise, what)}")
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-9):
        raise Failed(
            f"{context}: {what} is {np.round(got, 4).tolist()}, expected "
            f"{np.round(expected, 4).tolist()}{hint_for(exercise, what)}"
        )


def hint_for(exercise: Exercise, what: str) -> str:
    hint = exercise.hints.get(what) or exercise.hints.get("dx")
    return f"; hint: {hint}" if hint and what != "forward" and what != "loss" else ""


def run_example(exercise: Exercise, Class, path: str) -> None:
    for what, got, expected in guarded(lambda: exercise.example(Class), path, "the worked example"):
        compare(what, got, expected, exercise, "the worked example")


def gradients(exercise: Exercise, Class, path: str, seed: int = 0):
    """(backprop's gradients, central differences), {name: array} for every input and parameter."""
    rng = np.random.default_rng(seed)
    layer, inputs, names = guarded(lambda: exercise.make(Class, rng), path, "building the layer")
    inputs = list(inputs)
    if hasattr(layer, "train"):
        layer.train = True
    outputs = guarded(lambda: layer.forward(*inputs), path, "forward")
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    douts = [rng.standard_normal(np.shape(o)) for o in outputs]
    if getattr(layer, "mask", None) is not None and hasattr(layer, "draw_mask"):
        layer.draw_mask = lambda x, mask=layer.mask: mask  # dropout: the same mask every pass, one fixed function

    def loss():
        result = layer.forward(*inputs)
        if exercise.loss:
            return float(result)
        result = result if isinstance(result, tuple) else (result,)
        return float(sum(np.sum(np.asarray(o) * d) for o, d in zip(result, douts)))

    back = guarded(
        lambda: layer.backward(1.0) if exercise.loss else layer.backward(*[d.copy() for d in douts]), path, "backward"
    )
    back = back if isinstance(back, tuple) else (back,)
    analytic = {f"d{name}": grad for name, grad in zip([n for n in names if n != "t"], back)}
    for param in exercise.params:
        analytic[f"d{param}"] = getattr(layer, f"d{param}", None)
    numeric = {}
    for i, name in enumerate(names):
        if name != "t":
            numeric[f"d{name}"] = guarded(lambda: numerical_gradient(loss, inputs[i], h=1e-6), path, "forward")
    for param in exercise.params:
        numeric[f"d{param}"] = guarded(lambda: numerical_gradient(loss, getattr(layer, param), h=1e-6), path, "forward")
    return analytic, numeric, len(inputs[0]) if np.ndim(inputs[0]) > 1 else 1, douts


def diagnose(name: str, got, want: np.ndarray, batch: int, douts) -> tuple[float, str | None]:
    """(relative error, None) when `got` is right; else the error and a sentence on what is wrong."""
    if got is None:
        return 1.0, f"backward left {name} unset (None)"
    got = np.asarray(got, dtype=float)
    if got.shape != want.shape:
        turned = " (transposed?)" if got.shape == want.T.shape else ""
        if not turned and got.size == want.size:
            turned = f" (reshape it back to the input's shape, {want.shape})"
        return 1.0, f"{name} has shape {got.shape}, expected {want.shape}{turned}"
    error = parameter_error(got, want)
    if error < TOLERANCE:
        return error, None
    detail = ""
    scale = float(np.vdot(got, want) / max(np.vdot(want, want), 1e-300))
    if not np.any(got):
        detail = ": it is all zeros (is it ever written?)"
    elif parameter_error(got, scale * want) < 1e-6:
        detail = (
            ": it has the wrong sign"
            if abs(scale + 1) < 1e-6
            else f": off by a factor of {scale:.4g}"
            + (
                " (the batch size N: a missing or extra 1/N?)"
                if min(abs(scale - batch), abs(scale - 1 / batch)) < 1e-6
                else ""
            )
        )
    elif got.shape == want.T.shape == want.shape and parameter_error(got, want.T) < 1e-6:
        detail = ": it is the transpose of the right one"
    elif any(np.shape(d) == got.shape and np.allclose(got, d) for d in douts):
        detail = ": it equals dout, passed on unchanged (the local derivative is missing)"
    return error, f"{name} is wrong: relative error {error:.2e} against central differences{detail}"


def run_check(name: str, path: str) -> dict:
    """The whole check, as a dict: code (0 passed, 1 failed, 2 not a Python file), line, rows."""
    exercise = EXERCISES[name]
    try:
        Class = load_class(exercise, path)
        run_example(exercise, Class, path)
        analytic, numeric, batch, douts = gradients(exercise, Class, path)
        rows = []
        for grad, want in numeric.items():
            error, problem = diagnose(grad, analytic.get(grad), want, batch, douts)
            if problem:
                raise Failed(f"{problem}; hint: {exercise.hints.get(grad) or exercise.hints.get('dx')}")
            rows.append({"gradient": grad, "rel_error": error})
    except Failed as verdict:
        return {"code": verdict.code, "line": str(verdict), "rows": []}
    checked = ", ".join(f"{r['gradient']} {r['rel_error']:.1e}" for r in rows)
    return {
        "code": 0,
        "line": f"PASS: {exercise.cls}.backward agrees with the worked example and with central "
        f"differences (relative errors: {checked})",
        "rows": rows,
    }


def check_file(name: str, path: str, timeout: float = 20.0) -> dict:
    """run_check in a process of its own, stopped after `timeout` seconds."""
    command = [sys.executable, "-m", "bp_train.exercises.check", name, path]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {
            "code": EXIT_FAILED,
            "rows": [],
            "line": f"the check did not finish within {timeout:g} s: an endless loop in forward or backward?",
        }
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {
            "code": EXIT_FAILED,
            "rows": [],
            "line": f"your code stopped the check (exit code {done.returncode}) before it could say anything",
        }


if __name__ == "__main__":
    print("\n" + json.dumps(run_check(sys.argv[1], sys.argv[2])), flush=True)
