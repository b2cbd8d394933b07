"""Checking a student's backward pass: the hand-worked example first, then every gradient against central
differences, and for a wrong one, a hint for the bug that typically produces it.

The student's code runs in a process of its own (`check_file`), which may raise, loop forever, print
without end, eat memory or start processes of its own: it has a time limit, a memory limit, its output
goes nowhere, and its whole process group is killed when the check ends. That process only *runs* the
student's class and reports what it returned (`student_results`); the verdict is reached here, in the
tool's process, against bp-train's own class run on the same inputs (`judge`), so a file that prints a
PASS line, or writes one where the results go, cannot forge it: its gradients must be right.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback

import numpy as np

from ..nn.gradient import numerical_gradient, parameter_error
from .catalog import EXERCISES, Exercise

TOLERANCE = 1e-6
EXIT_FAILED, EXIT_NOT_PYTHON = 1, 2
MEMORY_LIMIT = 2 * 1024**3  # bytes of address space for the student's process: an exercise needs a few MB
RESULTS_LIMIT = 16 * 1024**2  # bytes of results it may write: the gradients of small arrays


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


def example_results(exercise: Exercise, Class, path: str) -> list:
    """What the class gives on the hand-worked example: [(what, got, expected)]."""
    return guarded(lambda: exercise.example(Class), path, "the worked example")


def gradients(exercise: Exercise, Class, path: str, seed: int = 0, numeric: bool = True):
    """(backprop's gradients, central differences (or {} when not `numeric`), batch size, douts), each a
    {name: array} for every input and parameter. The inputs come from `seed`: every process that runs
    this with the same seed sees the same numbers."""
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
    central = {}
    for i, name in enumerate(names if numeric else ()):
        if name != "t":
            central[f"d{name}"] = guarded(lambda: numerical_gradient(loss, inputs[i], h=1e-6), path, "forward")
    for param in exercise.params if numeric else ():
        central[f"d{param}"] = guarded(lambda: numerical_gradient(loss, getattr(layer, param), h=1e-6), path, "forward")
    return analytic, central, len(inputs[0]) if np.ndim(inputs[0]) > 1 else 1, douts


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


def as_list(value):
    """An array (or anything backward returned) as JSON: nested lists of floats, or None."""
    try:
        return np.asarray(value, dtype=float).tolist()
    except (TypeError, ValueError):
        return None


def student_results(name: str, path: str) -> dict:
    """Run in the student's process: what the class gives on the worked example and backward's gradients,
    or {"code", "line"} when the student's code could not give them (not Python, an exception)."""
    exercise = EXERCISES[name]
    try:
        Class = load_class(exercise, path)
        example = [(what, as_list(got)) for what, got, _ in example_results(exercise, Class, path)]
        analytic, _, _, _ = gradients(exercise, Class, path, numeric=False)
    except Failed as verdict:
        return {"code": verdict.code, "line": str(verdict)}
    return {"example": example, "gradients": {grad: as_list(value) for grad, value in analytic.items()}}


def judge(name: str, results: dict) -> dict:
    """The verdict, here in the tool's process: the student's results against bp-train's own class run on
    the same inputs (its worked-example answers, central differences of its forward)."""
    exercise = EXERCISES[name]
    if "line" in results:  # the student's code failed: its own words, at most a failure (exit 1 or 2)
        code = results.get("code") if results.get("code") in (EXIT_FAILED, EXIT_NOT_PYTHON) else EXIT_FAILED
        line = str(results["line"])[:1000]
        if line.startswith("PASS") or "\n" in line:
            line = "your code wrote a verdict of its own; the check decides, from the gradients it returns"
        return {"code": code, "line": line, "rows": []}
    reference = getattr(importlib.import_module(exercise.module), exercise.cls)
    try:
        expected = {what: want for what, _, want in exercise.example(reference)}
        got = dict(results["example"])
        for what, want in expected.items():
            compare(what, got.get(what), want, exercise, "the worked example")
        _, numeric, batch, douts = gradients(exercise, reference, "bp-train")
        rows = []
        for grad, want in numeric.items():
            error, problem = diagnose(grad, results["gradients"].get(grad), want, batch, douts)
            if problem:
                raise Failed(f"{problem}; hint: {exercise.hints.get(grad) or exercise.hints.get('dx')}")
            rows.append({"gradient": grad, "rel_error": error})
    except Failed as verdict:
        return {"code": verdict.code, "line": str(verdict), "rows": []}
    except (KeyError, TypeError, ValueError, AttributeError):
        return {"code": EXIT_FAILED, "rows": [], "line": "your code wrote results the check cannot read"}
    checked = ", ".join(f"{r['gradient']} {r['rel_error']:.1e}" for r in rows)
    return {
        "code": 0,
        "line": f"PASS: {exercise.cls}.backward agrees with the worked example and with central "
        f"differences (relative errors: {checked})",
        "rows": rows,
    }


def limit_student() -> None:
    """In the student's process before it starts: bounded memory and files, a process group of its own."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (RESULTS_LIMIT, RESULTS_LIMIT))


def check_file(name: str, path: str, timeout: float = 20.0) -> dict:
    """The student's class run in a process of its own, stopped after `timeout` seconds, judged here."""
    with tempfile.TemporaryDirectory(prefix="bp-train-check-") as folder:
        results_path = os.path.join(folder, "results.json")
        environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "bp_train.exercises.check", name, path, results_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # whatever it prints goes nowhere: no memory held for it
            stderr=subprocess.DEVNULL,
            env=environment,
            preexec_fn=limit_student,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return {
                "code": EXIT_FAILED,
                "rows": [],
                "line": f"the check did not finish within {timeout:g} s: an endless loop in forward or backward?",
            }
        finally:
            try:  # the process and anything it started in its group
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
        try:
            with open(results_path, "rb") as handle:
                results = json.loads(handle.read(RESULTS_LIMIT))
        except (OSError, ValueError):
            return {
                "code": EXIT_FAILED,
                "rows": [],
                "line": f"your code stopped the check (exit code {process.returncode}) before it could say anything"
                if process.returncode
                else "your code ended the check before it could say anything (an exit in forward or backward?)",
            }
    return judge(name, results if isinstance(results, dict) else {})


if __name__ == "__main__":
    found = student_results(sys.argv[1], sys.argv[2])
    with open(sys.argv[3], "w", encoding="utf-8") as out:
        json.dump(found, out)
