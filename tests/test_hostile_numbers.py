"""Hostile input, round three: huge numbers. A whole number too big for a float, one past Python's
4,300-digit limit, in YAML, in a --set value or index, in a tune range or an option: one line, exit 2,
the long value cut."""

import pytest
from conftest import run_cli, run_measured

BIG = "1" + "0" * 400  # too big for a float
HUGE = "9" * 5000  # past Python's int-from-text limit


@pytest.mark.parametrize(
    "assignment",
    [
        f"train.optimizer.lr={BIG}",
        f"model.hidden[0].size={BIG}",
        f"train.batch_size={BIG}",
        f"train.epochs={HUGE}",
        f"model.hidden[{HUGE}].size=3",
        f"model.hidden[{BIG}].size=3",
        f"train.weight_decay=-{BIG}",
        f"model.conv=[{{filters: {BIG}}}]",
        f"train.seed={BIG}",
        f"data.train_rows={HUGE}",
    ],
)
def test_a_huge_number_in_a_set_is_one_cut_line(assignment, tmp_path, digits_csv):
    code, stderr, seconds, peak = run_measured(
        "fit", "--data", digits_csv, "--out", tmp_path / "run", "--set", assignment
    )
    assert code == 2 and stderr.count("\n") == 1 and len(stderr) < 400, stderr[:300]
    assert "Traceback" not in stderr and seconds < 10 and peak < 500
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text",
    [
        f"train: {{epochs: {HUGE}}}",
        f"model: {{hidden: [{{size: {BIG}}}]}}",
        f"train: {{optimizer: {{lr: {BIG}}}}}",
        f"tune: {{space: {{train.optimizer.lr: {{log_uniform: [0.001, {BIG}]}}}}}}",
    ],
)
def test_a_huge_number_in_a_yaml_file_is_one_cut_line(text, tmp_path, digits_csv):
    config = tmp_path / "huge.yaml"
    config.write_text(text + "\n")
    result = run_cli("fit", "--config", config, "--data", digits_csv, "--out", tmp_path / "run")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and len(result.stderr) < 400, result.stderr[:300]
    assert str(config) in result.stderr


@pytest.mark.parametrize("option", [["--threads", "9" * 23], ["--epochs", "9" * 30], ["--seed", BIG]])
def test_a_huge_number_in_an_option_is_a_usage_error(option, tmp_path, digits_csv):
    result = run_cli("fit", "--data", digits_csv, "--out", tmp_path / "run", *option)
    assert result.exit_code == 2 and "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_labels_beyond_the_networks_outputs_are_one_line_in_every_command(tmp_path, digits_csv):
    """A 3-class network and digits labelled up to 9: fit refused it already; now every command does."""
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(None, ["model.output_size=3", f"data.train={digits_csv}", "model.hidden=[{size: 8}]"])
    save_model(tmp_path / "three.npz", build_network(config), config.to_dict())
    commands = [
        ["evaluate", "--model", tmp_path / "three.npz", "--data", digits_csv],
        ["gradcheck", "--set", "model.output_size=3", "--set", f"data.train={digits_csv}", "--entries", "3"],
        ["compare-speed", "--set", "model.output_size=3", "--set", f"data.train={digits_csv}", "--sizes", "5"],
        ["explain", "network", "--set", "model.output_size=3", "--set", f"data.train={digits_csv}"],
    ]
    for command in commands:
        result = run_cli(*command)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "3 outputs" in result.stderr, (
            command[0],
            result.stderr[-300:],
        )


def test_tune_timeout_nan_is_a_usage_error(tmp_path):
    result = run_cli("tune", "--config", "configs/tune-default.yaml", "--timeout", "nan")
    assert result.exit_code == 2 and "finite" in result.stderr


@pytest.mark.parametrize(
    "cells",
    [
        {10: "", 20: "1e400"},
        {10: "1e400"},
        {10: "-inf", 30: ""},
        {10: "0.5", 11: "inf"},
        {10: "9" * 25},
        {10: "", 11: "nan", 12: "1e400"},
    ],
)
@pytest.mark.parametrize("command", ["fit", "evaluate", "predict"])
def test_a_huge_or_infinite_cell_is_one_line_with_no_warning_from_pandas(cells, command, tmp_path):
    """numpy warns 'invalid value encountered in cast' (two lines) when pandas tries such a cell as an
    integer; the user sees only bp-train's line naming the first bad cell."""
    import numpy as np

    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    path = tmp_path / "cells.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(784))
    rows = [[str(i % 10)] + [str(v) for v in np.random.default_rng(i).integers(0, 256, 784)] for i in range(8)]
    for column, cell in cells.items():
        rows[3 + column % 2][column] = cell
    path.write_text(header + "\n" + "\n".join(",".join(row) for row in rows) + "\n")
    config = load_config(None, ["model.hidden=[{size: 8}]"])
    save_model(tmp_path / "model.npz", build_network(config), config.to_dict())
    args = {
        "fit": ["--data", path, "--out", tmp_path / "run", "--set", "model.hidden=[{size: 8}]"],
        "evaluate": ["--model", tmp_path / "model.npz", "--data", path],
        "predict": ["--model", tmp_path / "model.npz", "--data", path, "--out", tmp_path / "p.csv"],
    }[command]
    code, stderr, seconds, peak = run_measured(command, *args)
    error_lines = [line for line in stderr.splitlines() if not line.startswith(("training ", "writing "))]
    assert code == 2 and len(error_lines) == 1 and f"{path}: line " in error_lines[0], stderr
    told = error_lines[0].split("the value ")[1]
    assert told.startswith(("is empty", "is infinite", "is 'nan'", "is 0.5", "is " + "9" * 25)), (
        told
    )  # what the cell holds, in words
    assert "Warning" not in stderr and seconds < 10 and peak < 500
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "run" / "model.npz").exists()
