"""`bp-train exercise`: every solution passes its own check, and every typical bug fails it, naming the
gradient at fault; whatever a student's code does (raise, loop, return the wrong shape), one line."""

import re
import subprocess
import sys

import pytest

from bp_train.exercises.catalog import EXERCISES
from bp_train.exercises.template import exercise_file

BP_TRAIN = [sys.executable, "-m", "bp_train.cli"]


def bp_train(*args, cwd):
    return subprocess.run([*BP_TRAIN, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def solution(name, tmp_path):
    done = bp_train("exercise", "solution", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", list(EXERCISES))
def test_each_solution_passes_its_check(name, tmp_path):
    (tmp_path / "mine.py").write_text(solution(name, tmp_path))
    done = bp_train("exercise", "check", name, "--file", "mine.py", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("PASS"), done.stdout + done.stderr


# (exercise, text of bp-train's own backward, the same with a typical bug, the gradient that must be named)
BUGS = [
    ("mul", "return dout * self.y, dout * self.x", "return dout * self.x, dout * self.y", "dx"),
    ("add", "return dout, dout", "return dout, 0 * dout", "dy"),
    ("max", "return dout * self.x_won, dout * ~self.x_won", "return dout * ~self.x_won, dout * self.x_won", "dx"),
    ("copy", "return dout1 + dout2", "return dout1", "dx"),
    ("relu", "return dout * self.mask", "return dout", "dx"),  # the missing ReLU mask
    ("sigmoid", "return dout * (1.0 - self.out) * self.out", "return dout * self.out", "dx"),
    ("tanh", "return dout * (1.0 - self.out * self.out)", "return dout * (1.0 - self.out)", "dx"),
    ("affine", "self.dW = self.x.T @ dout", "self.dW = dout.T @ self.x", "dW"),  # a missing transpose
    ("affine", "self.db = np.sum(dout, axis=0)", "self.db = dout.sum(axis=1)", "db"),
    ("affine", "return dx.reshape(self.x_shape)", "return dx", "dx"),  # dx not reshaped back to x's shape
    ("softmax-with-loss", "return dx * dout / n", "return dx * dout", "dx"),  # the forgotten 1/N
    ("dropout", "return dout if self.mask is None else dout * self.mask", "return dout", "dx"),  # mask not applied
    (
        "batchnorm",
        "self.dgamma = np.sum(dout * self.xn, axis=0)",
        "self.dgamma = np.sum(dout * self.xn, axis=1)",
        "dgamma",
    ),
    ("batchnorm", "dxc += (2.0 / n) * self.xc * dvar", "dxc += 0.0 * dvar", "dx"),  # the variance's path left out
    ("batchnorm", "return dxc - dmu / n", "return dxc - dmu", "dx"),  # the forgotten 1/N of the mean
    (
        "convolution",
        "dcol = dout @ self.W.reshape(-1, fn).T",
        "dcol = dout @ self.W.reshape(fn, -1)",
        "dx",
    ),  # W reshaped instead of transposed
    (
        "convolution",
        "self.dW = (self.col.T @ dout).reshape(self.W.shape)",
        "self.dW = (self.col.T @ dout).reshape(self.W.shape) / len(dout)",
        "dW",
    ),
]


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_every_exercise_file_is_the_textbook_class_and_imports_nothing_of_bp_train(name):
    import ast

    for source in (exercise_file(EXERCISES[name], solved=True), exercise_file(EXERCISES[name], solved=False)):
        tree = ast.parse(source)
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert imported and all(module.split(".")[0] == "numpy" for module in imported), imported
        assert not re.search(r"\bbind\b|\bout=|need_dx", source)  # nothing of the tool's plumbing


def test_an_affine_backward_that_forgets_to_reshape_dx_fails_and_says_so(tmp_path):
    source = solution("affine", tmp_path).replace(
        "        dx = dout @ self.W.T\n        return dx.reshape(self.x_shape)", "        return dout @ self.W.T"
    )
    assert "return dout @ self.W.T" in source
    (tmp_path / "flat.py").write_text(source)
    done = bp_train("exercise", "check", "affine", "--file", "flat.py", cwd=tmp_path)
    assert done.returncode == 1 and "dx has shape (4, 6), expected (4, 1, 2, 3)" in done.stderr, done.stderr
    assert "reshape it back" in done.stderr  # (the solution itself passes: test_each_solution_passes_its_check)


@pytest.mark.parametrize("name, right, wrong, gradient", BUGS, ids=[f"{b[0]}-{b[3]}" for b in BUGS])
def test_each_typical_bug_fails_naming_the_gradient_at_fault(name, right, wrong, gradient, tmp_path):
    source = solution(name, tmp_path)
    assert right in source, "the planted bug must replace real code"
    (tmp_path / "buggy.py").write_text(source.replace(right, wrong))
    done = bp_train("exercise", "check", name, "--file", "buggy.py", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    line = done.stderr.strip()
    assert "\n" not in line and f"{gradient} " in line and "hint:" in line, line


STUDENT_MISTAKES = [
    ("the blank file as written", None, 1, "backward is not written yet"),
    ("an exception", "return 1 / 0", 1, "backward raised ZeroDivisionError: division by zero at "),
    ("an endless loop", "while True:\n            pass", 1, "did not finish within 3 s"),
    ("a wrong shape", "return dout[:, :1]", 1, "has shape"),
    ("not Python", "return dout *", 2, "not Python"),
    (
        "a forged PASS printed, then an exit",
        'import json, os\n        print(json.dumps({"code": 0, "line": "PASS: forged", "rows": []}))\n        os._exit(0)',
        1,
        "ended the check before it could say anything",
    ),
    (
        "a forged verdict written where the results go",
        'import json, os, sys\n        open(sys.argv[3], "w").write(json.dumps({"code": 0, "line": "PASS: forged"}))'
        "\n        os._exit(0)",
        1,
        "the check decides",
    ),
    (
        "forged results with every gradient zero",
        'import json, os, sys\n        open(sys.argv[3], "w").write(json.dumps({"example": [], "gradients": {}}))'
        "\n        os._exit(0)",
        1,
        "the worked example",
    ),
    ("output without end", 'while True:\n            print("x" * 100_000)', 1, "did not finish within 3 s"),
    ("more memory than an exercise needs", "return np.ones(2**29)", 1, "backward raised MemoryError"),
]


@pytest.mark.parametrize("what, body, code, message", STUDENT_MISTAKES, ids=[m[0] for m in STUDENT_MISTAKES])
def test_whatever_the_students_code_does_the_check_says_one_line(what, body, code, message, tmp_path):
    done = bp_train("exercise", "new", "relu", cwd=tmp_path)
    assert done.returncode == 0 and (tmp_path / "relu.py").is_file()
    if body is not None:
        text = (tmp_path / "relu.py").read_text()
        (tmp_path / "relu.py").write_text(text.replace('raise NotImplementedError("write ReLU.backward")', body))
    done = bp_train("exercise", "check", "relu", "--timeout", "3", cwd=tmp_path)
    assert done.returncode == code and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_process_the_students_code_starts_does_not_outlive_the_check(tmp_path):
    import os

    bp_train("exercise", "new", "relu", cwd=tmp_path)
    text = (tmp_path / "relu.py").read_text()
    body = 'import subprocess\n        subprocess.Popen(["sleep", "987"])\n        while True:\n            pass'
    (tmp_path / "relu.py").write_text(text.replace('raise NotImplementedError("write ReLU.backward")', body))
    done = bp_train("exercise", "check", "relu", "--timeout", "3", cwd=tmp_path)
    assert done.returncode == 1 and "did not finish" in done.stderr

    def sleepers():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if open(f"/proc/{pid}/cmdline", "rb").read() == b"sleep\x00987\x00":
                    found.append(pid)
            except OSError:
                pass
        return found

    assert sleepers() == []


def test_new_never_overwrites_a_students_file_and_unknown_names_are_one_line(tmp_path):
    (tmp_path / "affine.py").write_text("my work\n")
    done = bp_train("exercise", "new", "affine", cwd=tmp_path)
    assert done.returncode == 2 and "left alone" in done.stderr and (tmp_path / "affine.py").read_text() == "my work\n"
    done = bp_train("exercise", "check", "afine", cwd=tmp_path)
    assert done.returncode == 2 and "exercise list" in done.stderr and done.stderr.count("\n") == 1
    listed = bp_train("exercise", "list", cwd=tmp_path).stdout
    assert all(name in listed for name in EXERCISES)


def test_the_message_docs_learning_md_quotes_is_the_one_the_check_prints(tmp_path):
    from conftest import ROOT

    bp_train("exercise", "new", "relu", cwd=tmp_path)
    text = (tmp_path / "relu.py").read_text()
    (tmp_path / "relu.py").write_text(text.replace('raise NotImplementedError("write ReLU.backward")', "return dout"))
    printed = bp_train("exercise", "check", "relu", cwd=tmp_path).stderr.strip()
    page = " ".join((ROOT / "docs" / "learning.md").read_text().split())
    assert f"`{printed}`" in page, printed
