"""`bp-train export --onnx`: every shipped config's network passes onnx.checker, ONNX Runtime gives the
probabilities `predict --proba` gives, and bad requests are one line with nothing clobbered."""

import numpy as np
import pytest
from conftest import MNIST, REPLICA_TRAIN, ROOT, needs_shared, run_cli

onnx = pytest.importorskip("onnx", reason="export --onnx needs the optional onnx extra (in the dev extra)")

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_configs_network_exports_to_a_model_the_checker_passes(name, tmp_path):
    from bp_train.config import build_network, load_config
    from bp_train.files.model import save_model

    config = load_config(ROOT / "configs" / f"{name}.yaml")
    save_model(tmp_path / "model.npz", build_network(config, seed=1), config.to_dict())
    result = run_cli("export", "--model", tmp_path / "model.npz", "--onnx", tmp_path / "model.onnx")
    assert result.exit_code == 0, result.stderr
    model = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["classes"] == "0,1,2,3,4,5,6,7,8,9" and "0..255" in props["input_scaling"]
    assert props["config"] == config.name and "bp_train_version" in props and "0..255" in model.doc_string


TRAINED = {
    "dense": ["--config", "configs/default.yaml", "--epochs", "2"],
    "cnn-batchnorm": ["--config", "configs/best-cnn.yaml", "--epochs", "1", "--set", "data.train_rows=3000"],
    "sigmoid-mse": ["--config", "configs/sigmoid.yaml", "--epochs", "2", "--set", "model.loss=mse"],
}


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("kind", list(TRAINED))
def test_onnx_runtime_gives_predict_probas_probabilities_on_1000_t10k_rows(kind, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the comparison needs ONNX Runtime (in the dev extra)")
    from bp_train.data.mnist import read_pair, write_digit_csv

    run = tmp_path / "run"
    result = run_cli("fit", *TRAINED[kind], "--data", REPLICA_TRAIN, "--out", run, "--quiet", cwd=ROOT)
    assert result.exit_code == 0, result.stderr
    images, _ = read_pair(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz")
    rows = images[:1000].reshape(1000, -1)
    write_digit_csv(tmp_path / "t10k.csv", rows, None)
    assert (
        run_cli(
            "predict",
            "--model",
            run / "model.npz",
            "--data",
            tmp_path / "t10k.csv",
            "--out",
            tmp_path / "labels.csv",
            "--proba",
            tmp_path / "proba.csv",
        ).exit_code
        == 0
    )
    ours = np.loadtxt(tmp_path / "proba.csv", delimiter=",", skiprows=1)[:, 1:]
    labels = np.loadtxt(tmp_path / "labels.csv", delimiter=",", skiprows=1, dtype=int)[:, 1]
    assert run_cli("export", "--model", run / "model.npz", "--onnx", tmp_path / "m.onnx").exit_code == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    probabilities, predicted = session.run(None, {"pixels": rows.astype(np.float32)})
    assert np.abs(probabilities - ours).max() < 1e-5  # --proba writes 6 decimals
    assert np.array_equal(predicted, labels)


def test_bad_exports_are_one_line_and_clobber_nothing(tmp_path, tiny_config):
    run = tmp_path / "run"
    assert run_cli("fit", "--config", tiny_config, "--out", run, "--quiet").exit_code == 0
    model = run / "model.npz"
    before = model.read_bytes()
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W1=np.zeros(3))
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"keep me")
    cases = [
        (["--model", foreign, "--onnx", tmp_path / "a.onnx"], "not a bp-train"),
        (["--model", model, "--onnx", model], "refusing to overwrite"),
        (["--model", model, "--onnx", tmp_path / "missing" / "a.onnx"], "does not exist"),
        (["--model", model, "--onnx", existing], "--overwrite"),
        (["--model", tmp_path / "nothing.npz", "--onnx", tmp_path / "a.onnx"], "nothing.npz"),
    ]
    for args, message in cases:
        result = run_cli("export", *args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert model.read_bytes() == before and existing.read_bytes() == b"keep me"
    assert not (tmp_path / "a.onnx").exists()
    assert run_cli("export", "--model", model, "--onnx", existing, "--overwrite").exit_code == 0
    onnx.checker.check_model(onnx.load(existing))


def test_the_docs_onnx_runtime_snippet_runs_as_written(tmp_path, tiny_config, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the snippet needs ONNX Runtime (in the dev extra)")
    import re

    from bp_train.data.mnist import write_digit_csv

    page = (ROOT / "docs" / "kaggle.md").read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", page, re.S) if "onnxruntime" in block)
    assert run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet").exit_code == 0
    assert run_cli("export", "--model", tmp_path / "run" / "model.npz", "--onnx", tmp_path / "cnn.onnx").exit_code == 0
    (tmp_path / "data").mkdir()
    write_digit_csv(tmp_path / "data" / "test.csv", np.random.default_rng(0).integers(0, 256, (8, 784)), None)
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(compile(snippet, "docs/kaggle.md", "exec"), {"print": printed.append})
    assert printed[0].shape == (5,) and printed[0].dtype == np.int64


def test_an_ensemble_folder_exports_to_one_graph_that_averages_its_members(tmp_path, tiny_config):
    """An MLP ensemble of two seeds and a run folder: ONNX Runtime's probabilities equal predict --proba's
    (the members' average) to 1e-5."""
    ort = pytest.importorskip("onnxruntime", reason="the comparison needs ONNX Runtime (in the dev extra)")
    from conftest import synthetic_digits, write_digit_csv

    write_digit_csv(tmp_path / "train.csv", *synthetic_digits(400, seed=1))
    images, _ = synthetic_digits(200, seed=2)
    write_digit_csv(tmp_path / "test.csv", images, None)
    fitted = run_cli(
        "fit", "--config", tiny_config, "--data", tmp_path / "train.csv", "--seeds", "1,2", "--out",
        tmp_path / "ens", "--quiet",
    )  # fmt: skip
    assert fitted.exit_code == 0, fitted.stderr
    for source in (tmp_path / "ens", tmp_path / "ens" / "seed-1"):
        proba = tmp_path / f"{source.name}.csv"
        predicted = run_cli(
            "predict", "--model", source, "--data", tmp_path / "test.csv", "--out", tmp_path / "labels.csv",
            "--proba", proba,
        )  # fmt: skip
        assert predicted.exit_code == 0, predicted.stderr
        ours = np.loadtxt(proba, delimiter=",", skiprows=1)[:, 1:]
        exported = run_cli("export", "--model", source, "--onnx", tmp_path / f"{source.name}.onnx")
        assert exported.exit_code == 0, exported.stderr
        assert ("the average of 2 members" in exported.output) == (source.name == "ens")
        session = ort.InferenceSession(str(tmp_path / f"{source.name}.onnx"), providers=["CPUExecutionProvider"])
        probabilities, _ = session.run(None, {"pixels": images.astype(np.float32)})
        assert np.abs(probabilities - ours).max() < 1e-5
