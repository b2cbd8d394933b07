"""`make kaggle`, the Kaggle entrant's one command: it trains the ensemble, writes the submission with TTA,
and run again with more SEEDS it adds members and leaves the trained ones as they were. Run on a tiny
config and synthetic CSVs, with the test's own Python environment as the Makefile's .venv."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli, synthetic_digits, write_digit_csv

VENV = Path(sys.executable).parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def run_make_kaggle(*options, timeout=300, **variables):
    """`make kaggle` in the checkout with the test's environment as VENV; -o keeps make from reinstalling
    into it."""
    return subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "-o",
            f"{VENV}/.installed",
            *options,
            "kaggle",
            *[f"{key}={value}" for key, value in {"VENV": VENV, **variables}.items()],
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_kaggle(tmp_path, config, seeds, **variables):
    """`make kaggle` on the CSVs in tmp_path, everything it writes sent under tmp_path."""
    return run_make_kaggle(
        KAGGLE_CONFIG=config,
        SEEDS=seeds,
        JOBS=2,
        TRAIN_CSV=tmp_path / "train.csv",
        TEST_CSV=tmp_path / "test.csv",
        ENSEMBLE=tmp_path / "ensemble",
        SUBMISSION=tmp_path / "submission.csv",
        **variables,
    )


def members(ensemble: Path) -> list[str]:
    return sorted(p.name for p in ensemble.iterdir() if p.is_dir())


def test_make_kaggle_trains_the_ensemble_writes_the_tta_submission_and_adds_seeds(tmp_path, tiny_config):
    write_digit_csv(tmp_path / "train.csv", *synthetic_digits(600, seed=3))
    images, _ = synthetic_digits(300, seed=4)
    # Each band a row lower: halfway between two classes, where the shifts of TTA change some answers.
    write_digit_csv(tmp_path / "test.csv", np.roll(images.reshape(-1, 28, 28), 1, axis=1).reshape(300, -1), None)
    first = make_kaggle(tmp_path, tiny_config, "0,1")
    assert first.returncode == 0, first.stderr
    assert members(tmp_path / "ensemble") == ["seed-0", "seed-1"]
    kept = (tmp_path / "ensemble" / "seed-0" / "model.npz").read_bytes()

    again = make_kaggle(tmp_path, tiny_config, "0,1,2")
    assert again.returncode == 0, again.stderr
    assert members(tmp_path / "ensemble") == ["seed-0", "seed-1", "seed-2"]
    assert (tmp_path / "ensemble" / "seed-0" / "model.npz").read_bytes() == kept  # trained once, not again

    # The submission is the three members' average with TTA, as predict writes it, not the plain average.
    written = (tmp_path / "submission.csv").read_text()
    assert written.splitlines()[0] == "ImageId,Label" and len(written.splitlines()) == 301
    for tta, name in ((["--tta"], "tta.csv"), ([], "plain.csv")):
        by_hand = run_cli(
            "predict", "--model", tmp_path / "ensemble", *tta, "--data", tmp_path / "test.csv", "--out", tmp_path / name
        )
        assert by_hand.exit_code == 0, by_hand.output
    assert written == (tmp_path / "tta.csv").read_text() != (tmp_path / "plain.csv").read_text()


def test_make_kaggle_without_the_competition_files_says_where_to_get_them(tmp_path, tiny_config):
    result = make_kaggle(tmp_path, tiny_config, "0,1")  # no train.csv or test.csv written
    assert result.returncode == 2 and "kaggle.com/competitions/digit-recognizer" in result.stderr
    assert not (tmp_path / "ensemble").exists() and not (tmp_path / "submission.csv").exists()


def test_make_kaggle_device_cuda_trains_on_the_gpu_one_member_at_a_time():
    planned = run_make_kaggle("-n", timeout=60, DEVICE="cuda", TRAIN_CSV="Makefile", TEST_CSV="Makefile").stdout
    fit_lines = [line for line in planned.splitlines() if "fit --" in line]
    assert fit_lines and all("--jobs 1" in line for line in fit_lines)
    assert planned.count("--device cuda") == 3  # the new ensemble, the resumed one, and predict


def test_make_kaggle_epochs_overrides_the_configs_and_trains_the_members_on(tmp_path, tiny_config):
    write_digit_csv(tmp_path / "train.csv", *synthetic_digits(300, seed=3))
    write_digit_csv(tmp_path / "test.csv", synthetic_digits(50, seed=4)[0], None)

    def epochs_trained() -> list[int]:
        return [
            len((tmp_path / "ensemble" / name / "metrics.csv").read_text().splitlines()) - 1
            for name in members(tmp_path / "ensemble")
        ]

    first = make_kaggle(tmp_path, tiny_config, "0,1", EPOCHS=1)  # the config says 3
    assert first.returncode == 0, first.stderr
    assert epochs_trained() == [1, 1]
    longer = make_kaggle(tmp_path, tiny_config, "0,1", EPOCHS=4)  # resumed: three epochs more each
    assert longer.returncode == 0, longer.stderr
    assert epochs_trained() == [4, 4]


def test_make_kaggle_refuses_before_any_training_what_would_fail_after_it(tmp_path, tiny_config):
    """Two candidate files, an empty SEEDS or JOBS, a SUBMISSION that cannot be written, a test CSV of the
    wrong shape: each one line, exit 2, and no ensemble folder started."""
    data = tmp_path / "data"
    data.mkdir()
    write_digit_csv(data / "train.csv", *synthetic_digits(200, seed=3))
    shutil.copy(data / "train.csv", tmp_path / "train.csv")
    images, _ = synthetic_digits(50, seed=4)
    write_digit_csv(data / "test.csv", images, None)
    import gzip

    with open(data / "train.csv", "rb") as plain, gzip.open(data / "train.csv.gz", "wb") as packed:
        packed.write(plain.read())
    common = {"KAGGLE_CONFIG": tiny_config, "ENSEMBLE": tmp_path / "ensemble", "DATA": data, "JOBS": 1, "SEEDS": 0}
    both = run_make_kaggle(**common, SUBMISSION=tmp_path / "s.csv")
    assert both.returncode == 2 and f"{data}/train.csv {data}/train.csv.gz" in both.stderr, both.stderr
    cases = {
        "an empty SEEDS": ({"SEEDS": ""}, "SEEDS is empty"),
        "an empty JOBS": ({"JOBS": ""}, "JOBS is empty"),
        "a SUBMISSION in no folder": ({"SUBMISSION": tmp_path / "nowhere" / "s.csv"}, "does not exist"),
        "a SUBMISSION that is a folder": ({"SUBMISSION": tmp_path}, "a folder"),
        "a labelled test CSV": ({"TEST_CSV": tmp_path / "train.csv"}, "has a 'label' column"),
    }
    for what, (variables, message) in cases.items():
        chosen = {**common, "SUBMISSION": tmp_path / "s.csv", "TRAIN_CSV": tmp_path / "train.csv", **variables}
        result = run_make_kaggle(**chosen)
        assert result.returncode == 2 and message in result.stderr, (what, result.stderr)
        assert not (tmp_path / "ensemble").exists(), what
    chosen = {**common, "SUBMISSION": tmp_path / "s.csv", "TRAIN_CSV": tmp_path / "train.csv"}
    short = run_make_kaggle(**chosen, EPOCHS=1)
    assert short.returncode == 0, short.stderr
    assert "has 50 rows, not 28,000" in short.stderr  # a submission Kaggle would refuse: said, not refused
