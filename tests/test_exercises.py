"""`bp-train exercise`: every solution passes its own check, and every typical bug fails it, naming the
gradient at fault; whatever a student's code does (raise, loop, return the wrong shape), one line."""

import subprocess
import sys

import pytest

from bp_train.exercises.catalog import EXERCISES

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
    ("affine", "np.matmul(self.x.T, dout, out=self.dW)", "self.dW = dout.T @ self.x", "dW"),  # wrong transpose
    ("affine", "np.sum(dout, axis=0, out=self.db)", "self.db = dout.sum(axis=1)", "db"),
    ("softmax-with-loss", "dx *= dout / n", "dx *= dout", "dx"),  # the forgotten 1/N
    ("dropout", "return dout if self.scaled_mask is None else dout * self.scaled_mask", "return dout", "dx"),
    (
        "batchnorm",
        'self.dgamma[...] = np.einsum("ij,ij->j", dout, self.xhat)',  # a wrong axis
        "self.dgamma = np.sum(dout * self.xhat, axis=1)",
        "dgamma",
    ),
    ("batchnorm", "dx = self.xhat * (-self.dgamma / n)", "dx = self.xhat * 0.0", "dx"),
    (
        "convolution",
        "col2im_product(dout, self.W, self.x_shape",
        "col2im_product(dout, self.W[::-1, ::-1], self.x_shape",
        "dx",
    ),  # a wrong col2im
    (
        "convolution",
        "np.matmul(self.col.T, dout, out=self.dW.reshape(-1, fn))",
        "self.dW = (self.col.T @ dout).reshape(self.W.shape) / len(dout)",
        "dW",
    ),
    ("pooling", "drows[np.arange(dout.size), self.arg_max] = dout.ravel()", "drows[:, :] = dout.reshape(-1, 1)", "dx"),
]


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


def test_new_never_overwrites_a_students_file_and_unknown_names_are_one_line(tmp_path):
    (tmp_path / "affine.py").write_text("my work\n")
    done = bp_train("exercise", "new", "affine", cwd=tmp_path)
    assert done.returncode == 2 and "left alone" in done.stderr and (tmp_path / "affine.py").read_text() == "my work\n"
    done = bp_train("exercise", "check", "afine", cwd=tmp_path)
    assert done.returncode == 2 and "exercise list" in done.stderr and done.stderr.count("\n") == 1
    listed = bp_train("exercise", "list", cwd=tmp_path).stdout
    assert all(name in listed for name in EXERCISES)
