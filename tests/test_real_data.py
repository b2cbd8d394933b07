"""Acceptance on the real data (in CI, ../shared/data is present): accuracy of the shipped configs,
the Kaggle submission for the 28,000-row test file, gradients on real digits, and peak memory."""

import json

import pytest
from conftest import REPLICA_TEST, REPLICA_TRAIN, ROOT, needs_shared, run_cli, run_measured

pytestmark = needs_shared


@pytest.mark.slow
@pytest.mark.parametrize("config, minimum", [("default", 0.975), ("deep", 0.980)])
def test_shipped_config_reaches_its_validation_accuracy_on_the_kaggle_replica(tmp_path, config, minimum):
    result = run_cli(
        "fit",
        "--config",
        ROOT / "configs" / f"{config}.yaml",
        "--data",
        REPLICA_TRAIN,
        "--out",
        tmp_path / config,
        "--quiet",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["val_accuracy"] >= minimum, summary
    if config == "default":
        out = tmp_path / "submission.csv"
        predicted = run_cli("predict", "--model", tmp_path / config / "model.npz", "--data", REPLICA_TEST, "--out", out)
        assert predicted.exit_code == 0, predicted.output
        lines = out.read_text().splitlines()
        assert lines[0] == "ImageId,Label" and len(lines) == 28001
        assert lines[1].startswith("1,") and lines[-1].startswith("28000,")


@pytest.mark.slow
def test_gradcheck_passes_on_real_digits(tmp_path):
    result = run_cli(
        "gradcheck", "--config", ROOT / "configs" / "default.yaml", "--set", f"data.train={REPLICA_TRAIN}", "--json"
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert str(REPLICA_TRAIN) in figures["data"]
    assert all(row["rel_error"] < 1e-6 for row in figures["params"])


def test_peak_memory_of_fit_on_the_42000_row_file_stays_under_1_gib(tmp_path):
    code, stderr, _, peak_mib = run_measured(
        "fit", "--data", REPLICA_TRAIN, "--epochs", "1", "--out", tmp_path / "run", "--quiet", "--no-cache", timeout=300
    )
    assert code == 0, stderr
    assert peak_mib < 1024, f"peak {peak_mib:.0f} MiB"
