"""Hostile command lines, drawn by hypothesis: every command with its options given odd values and odd
files. Whatever the input, the CLI ends with exit code 0, 1 or 2 and never with an unhandled exception."""

import click
import pytest
from click.testing import CliRunner
from conftest import synthetic_digits, write_digit_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bp_train.cli import main

# Values that are wrong in every way an option can be, and none that is valid but slow (a huge epoch count
# is a long run, not a hostile input).
HOSTILE = [
    "",
    "-1",
    "0",
    "1",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "x",
    "1,2,",
    ",",
    "0-",
    "5-2",
    "3-x",
    "..",
    "/",
    "all",
    "float16",
    "a=b",
    "train.epochs=",
    "model.hidden[9].size=3",
    "=1",
    "ümlaut",
    "\x00",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    images, labels = synthetic_digits(60, seed=4)
    good = write_digit_csv(folder / "good.csv", images, labels)
    unlabelled = write_digit_csv(folder / "test.csv", images, None)
    config = folder / "tiny.yaml"
    config.write_text(
        "model: {hidden: [{size: 8}]}\ntrain: {epochs: 1, batch_size: 20}\n"
        f"data: {{train: {good}, val_fraction: 0.25}}\n"
    )
    run = folder / "run"
    result = CliRunner().invoke(main, ["fit", "--config", str(config), "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    (folder / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "empty").write_bytes(b"")
    (folder / "bad.yaml").write_text("model: [\n")
    paths = {
        "good": good,
        "test": unlabelled,
        "config": config,
        "run": run,
        "model": run / "model.npz",
        "metrics": run / "metrics.csv",
        "garbage": folder / "garbage.bin",
        "empty": folder / "empty",
        "badyaml": folder / "bad.yaml",
        "missing": folder / "missing.csv",
        "folder": folder,
    }
    return folder, {k: str(v) for k, v in paths.items()}


def value(files_by_name):
    return st.sampled_from(HOSTILE) | st.sampled_from(sorted(files_by_name.values())) | st.text(max_size=8)


# command -> (arguments always given first, so that a run is small and fast; options to draw from)
COMMANDS = {
    "fit": (
        ["--config", "config", "--epochs", "1", "--quiet"],
        ["--set", "--data", "--seed", "--train-rows", "--out", "--resume", "--gradient", "--config", "--jobs"],
    ),
    "evaluate": ([], ["--model", "--data", "--labels", "--run", "--json"]),
    "predict": ([], ["--model", "--data", "--out", "--proba"]),
    "gradcheck": (
        ["--config", "config", "--batch", "2"],
        ["--set", "--batch", "--seed", "--tol", "--h", "--entries", "--dtype", "--config"],
    ),
    "compare-speed": (
        ["--config", "config", "--sizes", "2,3", "--steps", "1", "--budget", "0.2", "--batch", "4"],
        ["--set", "--sizes", "--batch", "--steps", "--budget", "--config"],
    ),
    "show": ([], ["--rows", "--limit", "--augment"]),
    "plot": ([], ["--out", "--activations", "--augment"]),
    "explain": ([], ["--config", "--set", "--model", "--png", "--json"]),
    "tune": (
        ["--config", "config", "--trials", "1"],
        ["--set", "--trials", "--jobs", "--storage", "--study", "--timeout", "--config"],
    ),
}
FLAGS = {"--json", "--quiet", "--augment"}
POSITIONAL = {"show": 1, "plot": 1, "explain": 1}


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@pytest.mark.slow
@given(data=st.data())
def test_hostile_command_lines_end_in_an_exit_code_never_an_exception(files, data, monkeypatch):
    folder, paths = files
    monkeypatch.chdir(folder)
    command = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    fixed, options = COMMANDS[command]
    args = [command] + [paths.get(a, a) for a in fixed]
    for _ in range(data.draw(st.integers(0, 4), label="options")):
        option = data.draw(st.sampled_from(options))
        args += [option] if option in FLAGS and data.draw(st.booleans()) else [option, data.draw(value(paths))]
    for _ in range(POSITIONAL.get(command, 0)):
        args.append(data.draw(value(paths) | st.sampled_from(["apple", "network", "xyz"])))
    if "--out" not in args and command in ("fit",):
        args += ["--out", str(folder / "runs" / "fuzzed")]
    result = CliRunner().invoke(main, args)
    unexpected = result.exception if not isinstance(result.exception, (SystemExit, click.exceptions.Exit)) else None
    assert unexpected is None, (args, repr(unexpected))
    assert result.exit_code in (0, 1, 2, 130), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, args
