"""What a new user meets first: .gz data where the README says it works, --set that indexes lists and names
itself in errors, evaluate --run, runs without a validation split, warnings that save a wasted run, and
BLAS threads chosen on purpose."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli, synthetic_digits, write_digit_csv

from bp_train.config import load_config
from bp_train.errors import BPTrainError, ConfigError
from bp_train.machine.threads import busy_cores, choose_threads, usable_cores


def gz_digits(path, n=300, seed=0):
    import gzip

    images, labels = synthetic_digits(n, seed)
    plain = write_digit_csv(path.with_suffix(""), images, labels)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    return path


def test_the_default_data_path_finds_the_kaggle_gz_file(tmp_path):
    (tmp_path / "data").mkdir()
    gz_digits(tmp_path / "data" / "train.csv.gz")
    result = run_cli("fit", "--set", "model.hidden=[{size: 16}]", "--epochs", "1", "--quiet", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "default" / "model.npz").is_file()


def test_missing_training_data_says_where_it_looked_and_what_to_do(tmp_path):
    result = run_cli("fit", "--epochs", "1", cwd=tmp_path)
    assert result.exit_code == 2
    assert "nor a .gz of it" in result.stderr and "Kaggle train.csv(.gz)" in result.stderr


def test_a_failed_download_says_what_works_offline(tmp_path):
    result = run_cli(
        "data", "fetch", "--dest", tmp_path, "--no-default-mirrors", "--mirror", f"file://{tmp_path}/nowhere/"
    )
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "train.csv(.gz)" in result.stderr and "--mirror file://" in result.stderr


def test_set_indexes_lists_and_fills_defaults_the_file_leaves_out():
    config = load_config(ROOT / "configs" / "deep.yaml", ["model.hidden[1].size=64", "model.hidden[0].dropout=0.1"])
    assert [h.size for h in config.model.hidden] == [512, 64] and config.model.hidden[0].dropout == 0.1
    assert load_config(None, ["model.hidden[0].size=7"]).model.hidden[0].size == 7  # from the built-in default


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=ten", "--set train.epochs=ten: 'train.epochs' is 'ten'; expected a whole number"),
        ("model.hidden[3].size=5", "'model.hidden' has 1 item(s); index 3 is out of range"),
        (
            "model.hidden[0].sise=5",
            "--set model.hidden[0].sise=5: unknown key 'model.hidden[0].sise' (did you mean 'size'?)",
        ),
        ("model.hidden[x].size=5", "is not a dotted path like train.epochs or model.hidden[0].size"),
    ],
)
def test_set_errors_name_the_set_not_the_config_file(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(ROOT / "configs" / "default.yaml", [override])
    assert message in str(error.value)
    assert not str(error.value).startswith(str(ROOT / "configs"))


def test_an_error_in_the_file_still_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=f"^{bad}: 'train.epochs' is 0"):
        load_config(bad, ["train.batch_size=10"])


def test_switching_optimizer_from_the_command_line_warns_about_a_learning_rate_meant_for_another(tiny_config):
    result = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--set",
        "train.optimizer.name=adam",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        tiny_config.parent / "run",
    )
    assert result.exit_code == 0
    assert "train.optimizer.lr=0.05, outside the 0.0001..0.01 that adam usually wants" in result.stderr
    quiet = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--set",
        "train.optimizer.name=adam",
        "--set",
        "train.optimizer.lr=0.001",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        tiny_config.parent / "run",
    )
    assert "warning" not in quiet.stderr


def test_the_saved_config_omits_keys_the_optimizer_and_schedule_do_not_read(tiny_config, tmp_path):
    assert run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--epochs", "1", "--quiet").exit_code == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["optimizer"] == {"name": "momentum", "lr": 0.05, "momentum": 0.9}
    assert saved["train"]["schedule"] == {"name": "constant", "warmup_epochs": 0.0}
    result = run_cli(
        "fit", "--config", tmp_path / "run" / "config.yaml", "--out", tmp_path / "again", "--epochs", "1", "--quiet"
    )
    assert result.exit_code == 0, result.output  # and the saved config is still a config


def test_evaluate_run_scores_the_runs_own_validation_split(tiny_config, tmp_path):
    result = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet", "--json")
    fitted = json.loads(result.stdout)
    result = run_cli("evaluate", "--run", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["rows"] == 120 and figures["accuracy"] == pytest.approx(fitted["val_accuracy"])
    assert figures["rows_seen_in_training"] == 0 and "warning" not in result.stderr


def test_evaluate_warns_when_many_rows_were_seen_in_training(tiny_config, tmp_path, digits_csv):
    run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet")
    result = run_cli("evaluate", "--model", tmp_path / "run" / "model.npz", "--data", digits_csv, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["rows_seen_in_training"] == 480  # the 80% of rows fit trained on
    assert "warning: 480 of the 600 rows (80.0%) are rows this model was trained on" in result.stderr
    fresh = write_digit_csv(tmp_path / "fresh.csv", *synthetic_digits(200, seed=99))
    result = run_cli("evaluate", "--model", tmp_path / "run" / "model.npz", "--data", fresh)
    assert result.exit_code == 0 and "warning" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "RUN", "--data", "x.csv"], "give either --run or --model/--data"),
        (["--model", "RUN/model.npz"], "give --model and --data"),
    ],
)
def test_evaluate_refuses_contradictory_or_missing_options(tiny_config, tmp_path, args, message):
    run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet")
    result = run_cli("evaluate", *[a.replace("RUN", str(tmp_path / "run")) for a in args])
    assert result.exit_code == 2 and message in result.stderr


def test_a_run_without_validation_split_is_plotted_and_shown_as_far_as_it_can_be(tiny_config, tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    assert (
        run_cli("fit", "--config", tiny_config, "--set", "data.val_fraction=0", "--out", run, "--quiet").exit_code == 0
    )
    result = run_cli("plot", run)
    assert result.exit_code == 0, result.output
    assert "training curves only" in result.stdout and (run / "learning_curves.png").is_file()
    assert not (run / "confusion.png").exists()
    result = run_cli("show", run, "--limit", "2")
    assert result.exit_code == 0 and "no validation split" in result.stdout
    assert result.stdout.count("training row ") == 2 and "predicted" in result.stdout
    result = run_cli("evaluate", "--run", run)
    assert result.exit_code == 2 and "no validation split" in result.stderr


def test_the_help_example_no_longer_evaluates_on_the_training_file():
    result = run_cli("--help")
    assert "evaluate --run runs/default" in result.stdout
    assert "--data data/train.csv" not in result.stdout


# --- threads -----------------------------------------------------------------------------------------------


def test_thread_choice_honours_a_request_and_stays_within_the_usable_cores(monkeypatch):
    monkeypatch.delenv("BP_TRAIN_THREADS", raising=False)
    assert choose_threads(3).threads == 3
    auto = choose_threads()
    assert 1 <= auto.threads <= usable_cores() and "auto" in auto.reason
    monkeypatch.setenv("BP_TRAIN_THREADS", "2")
    assert choose_threads().threads == 2 and choose_threads(1).threads == 1  # --threads still wins
    for bad in ("0", "two", "1_0", "-1"):
        monkeypatch.setenv("BP_TRAIN_THREADS", bad)
        with pytest.raises(BPTrainError, match="BP_TRAIN_THREADS"):
            choose_threads()


@pytest.mark.skipif(usable_cores() < 2, reason="needs two usable cores to leave one free")
def test_a_busy_neighbour_is_seen_and_costs_one_thread(monkeypatch):
    monkeypatch.delenv("BP_TRAIN_THREADS", raising=False)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores() >= 0.6
        assert choose_threads().threads <= usable_cores() - 1
    finally:
        spinner.kill()
        spinner.wait()


def test_fit_reports_its_thread_choice_and_the_same_thread_count_reproduces_the_weights(tiny_config, tmp_path):
    for name in ("a", "b"):
        result = run_cli(
            "fit", "--config", tiny_config, "--out", tmp_path / name, "--quiet", "--json", "--threads", "1"
        )
        assert result.exit_code == 0 and json.loads(result.stdout)["threads"] == 1
        assert "1 BLAS thread (--threads)" in result.stderr
    with np.load(tmp_path / "a" / "model.npz") as a, np.load(tmp_path / "b" / "model.npz") as b:
        np.testing.assert_array_equal(a["W1"], b["W1"])


@pytest.mark.slow
def test_bench_busy_reports_idle_and_busy_epochs_with_their_thread_counts(digits_csv):
    result = run_cli(
        "bench",
        "--data",
        digits_csv,
        "--busy",
        "--epochs",
        "2",
        "--json",
        "--config",
        ROOT / "configs" / "default.yaml",
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["training"][0]
    assert row["threads"] >= 1 and row["busy"]["threads"] >= 1 and row["busy_over_idle"] > 0


def test_every_install_hint_works_as_written_from_a_checkout():
    """bp-train is not on PyPI: `pip install 'bp-train[gpu]'` fails. Every hint the program or the docs
    print installs an extra this pyproject defines, from the checkout, into the project's environment."""
    import re
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    texts = [
        p.read_text() for p in [*(ROOT / "bp_train").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    ]
    hinted = set()
    for text in texts:
        assert "bp-train[" not in text  # a PyPI name that does not exist
        hinted |= set(re.findall(r"\.venv/bin/python -m pip install -e '\.\[(\w+)\]'", text))
    assert hinted and hinted <= set(extras), hinted - set(extras)
    assert {"gpu", "plot", "tune", "onnx", "postgres"} <= hinted
