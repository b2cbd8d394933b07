"""The command line end to end: fit -> evaluate -> predict, the submission format, and bad model files or
options refused with exit code 2, one line, and no file clobbered."""

import json
import pickle

import numpy as np
import pytest
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train import __version__


@pytest.fixture
def trained(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    return tmp_path / "run", json.loads(result.stdout)


def test_help_explains_every_command_with_examples():
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("fit", "evaluate", "predict", "gradcheck", "compare-speed", "data", "plot", "show", "bench"):
        assert command in result.stdout
    assert "Examples:" in result.stdout and "Exit codes" in result.stdout
    assert run_cli("fit", "--help").stdout.count("--") >= 10
    assert __version__ in run_cli("--version").stdout


def test_fit_json_summary_and_overrides(tmp_path, tiny_config):
    result = run_cli(
        "fit",
        "--config",
        tiny_config,
        "--epochs",
        "2",
        "--seed",
        "5",
        "--set",
        "train.optimizer.lr=0.1",
        "--out",
        tmp_path / "r",
        "--quiet",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 2 and 0 <= summary["val_accuracy"] <= 1
    saved = (tmp_path / "r" / "config.yaml").read_text()
    assert "seed: 5" in saved and "lr: 0.1" in saved and "epochs: 2" in saved


def test_fit_default_run_folder_is_named_after_the_config(tmp_path, tiny_config):
    assert run_cli("fit", "--config", tiny_config, "--quiet", "--epochs", "1", cwd=tmp_path).exit_code == 0
    assert (tmp_path / "runs" / "tiny" / "model.npz").is_file()


def test_predict_writes_a_kaggle_submission(tmp_path, trained):
    run_dir, _ = trained
    images, _ = synthetic_digits(37, seed=9)
    test_csv = write_digit_csv(tmp_path / "test.csv", images, None)
    result = run_cli(
        "predict",
        "--model",
        run_dir / "model.npz",
        "--data",
        test_csv,
        "--out",
        tmp_path / "sub.csv",
        "--proba",
        tmp_path / "proba.csv",
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "sub.csv").read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 38
    ids, labels = zip(*(map(int, line.split(",")) for line in lines[1:]))
    assert list(ids) == list(range(1, 38)) and set(labels) <= set(range(10))
    proba = np.loadtxt(tmp_path / "proba.csv", delimiter=",", skiprows=1)
    assert np.allclose(proba[:, 1:].sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(proba[:, 1:].argmax(axis=1), labels)


def test_evaluate_reports_accuracy_confusion_and_per_class_figures(tmp_path, trained):
    run_dir, _ = trained
    images, labels = synthetic_digits(200, seed=11)
    data = write_digit_csv(tmp_path / "eval.csv", images, labels)
    result = run_cli("evaluate", "--model", run_dir / "model.npz", "--data", data, "--json")
    report = json.loads(result.stdout)
    confusion = np.array(report["confusion_matrix"])
    assert confusion.sum() == 200 and np.array_equal(confusion.sum(axis=1), np.bincount(labels, minlength=10))
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 200)
    assert [r["support"] for r in report["per_class"]] == list(np.bincount(labels, minlength=10))
    text = run_cli("evaluate", "--model", run_dir / "model.npz", "--data", data).stdout
    assert "confusion matrix" in text and "precision" in text


def test_evaluate_an_unlabelled_csv_with_a_labels_file(tmp_path, trained):
    run_dir, _ = trained
    images, labels = synthetic_digits(50, seed=12)
    data = write_digit_csv(tmp_path / "test.csv", images, None)
    order = np.random.default_rng(0).permutation(50)  # any row order of ImageId,Label is accepted
    (tmp_path / "labels.csv").write_text("ImageId,Label\n" + "".join(f"{i + 1},{labels[i]}\n" for i in order))
    with_labels = json.loads(
        run_cli(
            "evaluate", "--model", run_dir / "model.npz", "--data", data, "--labels", tmp_path / "labels.csv", "--json"
        ).stdout
    )
    labelled = write_digit_csv(tmp_path / "labelled.csv", images, labels)
    direct = json.loads(run_cli("evaluate", "--model", run_dir / "model.npz", "--data", labelled, "--json").stdout)
    assert with_labels["confusion_matrix"] == direct["confusion_matrix"]


def bad_model(tmp_path, kind, trained_model):
    path = tmp_path / f"{kind}.npz"
    if kind == "text":
        path.write_text("hello")
    elif kind == "truncated":
        path.write_bytes(trained_model.read_bytes()[:300])
    elif kind == "foreign":
        np.savez(path, weights=np.zeros(3))
    elif kind == "pickled":
        with open(path, "wb") as handle:
            np.save(handle, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    elif kind == "pickled_npz":
        np.savez(path, meta=np.array([{"evil": 1}], dtype=object), W1=np.zeros(2))
    elif kind == "raw_pickle":
        path.write_bytes(pickle.dumps({"W1": 1}))
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("text", "not a bp-train model file"),
        ("truncated", "not a bp-train model file, or truncated"),
        ("foreign", "made by another program"),
        ("pickled", "pickled Python objects; refused"),
        ("pickled_npz", "pickled Python objects; refused"),
        ("raw_pickle", "pickled Python objects; refused"),
        ("missing", "model file not found"),
    ],
)
def test_bad_model_files_are_refused_in_one_line(tmp_path, trained, kind, message):
    run_dir, _ = trained
    path = bad_model(tmp_path, kind, run_dir / "model.npz")
    images, _ = synthetic_digits(5)
    data = write_digit_csv(tmp_path / "t.csv", images, None)
    (tmp_path / "sub.csv").write_text("keep me")
    result = run_cli("predict", "--model", path, "--data", data, "--out", tmp_path / "sub.csv")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and str(path) in result.stderr and result.stderr.count("\n") == 1
    assert (tmp_path / "sub.csv").read_text() == "keep me"


def test_predict_refuses_data_of_another_size_and_keeps_the_old_submission(tmp_path, trained):
    run_dir, _ = trained
    (tmp_path / "sub.csv").write_text("keep me")
    header = "pixel0,pixel1,pixel2\n1,2,3\n"
    (tmp_path / "small.csv").write_text(header)
    result = run_cli(
        "predict", "--model", run_dir / "model.npz", "--data", tmp_path / "small.csv", "--out", tmp_path / "sub.csv"
    )
    assert result.exit_code == 2 and "small.csv" in result.stderr
    assert (tmp_path / "sub.csv").read_text() == "keep me"


@pytest.mark.parametrize("out, message", [("missing/dir/sub.csv", "does not exist"), ("{data}", "is the input file")])
def test_predict_refuses_bad_output_paths(tmp_path, trained, out, message):
    run_dir, _ = trained
    images, _ = synthetic_digits(5)
    data = write_digit_csv(tmp_path / "t.csv", images, None)
    before = data.read_bytes()
    out = out.format(data=data) if "{" in out else tmp_path / out
    result = run_cli("predict", "--model", run_dir / "model.npz", "--data", data, "--out", out)
    assert result.exit_code == 2 and message in result.stderr
    assert data.read_bytes() == before


def test_contradictory_options_are_refused(tmp_path, trained):
    run_dir, _ = trained
    result = run_cli("fit", "--resume", run_dir, "--out", tmp_path / "elsewhere")
    assert result.exit_code == 2 and "name different run folders" in result.stderr


def test_resume_from_the_cli_continues_the_run(tmp_path, trained):
    run_dir, _ = trained
    result = run_cli("fit", "--resume", run_dir, "--epochs", "5", "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["epochs"] == 5
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 6
    changed = run_cli("fit", "--resume", run_dir, "--epochs", "6", "--set", "model.hidden=[{size: 8}]")
    assert changed.exit_code == 2 and "'model.hidden' changed" in changed.stderr


def test_show_prints_digits_as_text(tmp_path):
    images, labels = synthetic_digits(3)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    result = run_cli("show", data, "--rows", "1")
    lines = result.stdout.splitlines()
    assert lines[0] == f"row 1: label {labels[1]}" and len(lines) == 29
    art = lines[1:]
    band = {2 + 2 * int(labels[1]), 3 + 2 * int(labels[1])}  # where the synthetic digit's bright band lies
    for row, text in enumerate(art):
        ink = text[8:48]  # pixel columns 4..23, two characters each
        assert all(c in "*#%@" for c in ink) == (row in band), row
    assert run_cli("show", data, "--rows", "7").exit_code == 2
