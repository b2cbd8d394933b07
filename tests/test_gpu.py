"""The same layer code on an NVIDIA GPU (CuPy): the same weights as on the CPU in float64, gradcheck passing
there, determinism, and a GPU-trained model predicting on the CPU. Skipped, with the reason, without CuPy
or a GPU."""

import json

import numpy as np
import pytest
from conftest import run_cli, synthetic_digits, write_digit_csv

from bp_train.config import load_config
from bp_train.data.digits import Digits
from bp_train.training.trainer import Trainer

cupy = pytest.importorskip(
    "cupy", reason="CuPy is the optional extra gpu (.venv/bin/python -m pip install -e '.[gpu]'); GPU tests need it"
)
try:
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as exc:  # whatever CUDA says, there is no GPU to test on
    pytest.skip(f"CuPy finds no NVIDIA GPU ({exc})", allow_module_level=True)

pytestmark = pytest.mark.gpu

DENSE = [
    "model.hidden=[{size: 40, dropout: 0.3, batchnorm: true}, {size: 20}]",
    "train.optimizer={name: adam, lr: 0.002}",
    "train.weight_decay=0.001",
]
CONV = [
    "model.input_shape=[1, 28, 28]",
    "model.conv=[{filters: 4, kernel: 3, pad: 1, pool: 2, batchnorm: true}, {filters: 6, kernel: 3, pool: 2}]",
    "model.hidden=[{size: 16, dropout: 0.2}]",
    "train.optimizer={name: momentum, lr: 0.05}",
]


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def steps_on(device, tmp_path, overrides, steps=6):
    images, labels = synthetic_digits(200, seed=3)
    config = load_config(
        None,
        [
            f"data.train={tmp_path / 'unused.csv'}",
            "data.val_fraction=0",
            "train.batch_size=25",
            "model.dtype=float64",
            f"train.device={device}",
            *overrides,
        ],
    )
    trainer = Trainer(config, tmp_path / device, show_progress=False, digits=Digits(images, labels, "synthetic"))
    for i, (xb, tb) in enumerate(trainer.shuffler.epoch()):
        if i == steps:
            break
        network = trainer.network
        network.gradient(xb, tb)
        trainer.optimizer.update_vectors(network.params, network.vectors)  # as fit steps
    return trainer.network.state()


@pytest.mark.parametrize("overrides", [DENSE, CONV], ids=["dense-bn-dropout-adam", "cnn-bn-pool-momentum"])
def test_float64_training_steps_end_at_the_same_weights_on_gpu_and_cpu(tmp_path, overrides):
    cpu, gpu = steps_on("cpu", tmp_path, overrides), steps_on("cuda", tmp_path, overrides)
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        assert isinstance(gpu[key], np.ndarray)  # state() hands back host arrays
        scale = max(np.abs(cpu[key]).max(), 1e-30)
        assert np.abs(gpu[key] - cpu[key]).max() / scale < 1e-10, key


def test_gradcheck_passes_on_the_gpu():
    result = run_cli("gradcheck", "--device", "cuda", "--batch", "3", "--entries", "40", "--json", *sets(CONV))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and all(row["rel_error"] < 1e-6 for row in report["params"])


def test_a_gpu_trained_model_predicts_the_same_labels_on_the_cpu(tmp_path):
    images, labels = synthetic_digits(600, seed=9)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    fitted = run_cli(
        "fit", "--data", data, "--out", tmp_path / "run", "--epochs", "2", "--device", "cuda", "--quiet", *sets(CONV)
    )
    assert fitted.exit_code == 0, fitted.output
    test_csv = write_digit_csv(tmp_path / "test.csv", images, None)
    for device in ("cuda", "cpu"):
        result = run_cli(
            "predict",
            "--model",
            tmp_path / "run" / "model.npz",
            "--data",
            test_csv,
            "--out",
            tmp_path / f"{device}.csv",
            "--proba",
            tmp_path / f"{device}-p.csv",
            "--device",
            device,
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "cuda.csv").read_text() == (tmp_path / "cpu.csv").read_text()
    p_gpu = np.loadtxt(tmp_path / "cuda-p.csv", delimiter=",", skiprows=1)
    p_cpu = np.loadtxt(tmp_path / "cpu-p.csv", delimiter=",", skiprows=1)
    assert np.abs(p_gpu - p_cpu).max() <= 2e-6  # float32 sums in another order: written to 6 decimals


def test_a_cpu_checkpoint_resumes_on_the_gpu_exactly_as_far_as_float64_goes(tmp_path):
    images, labels = synthetic_digits(300, seed=4)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    common = ["--data", data, "--quiet", "--set", "model.dtype=float64", *sets(DENSE)]
    assert run_cli("fit", *common, "--out", tmp_path / "straight", "--epochs", "3").exit_code == 0
    assert run_cli("fit", *common, "--out", tmp_path / "split", "--epochs", "1").exit_code == 0
    resumed = run_cli("fit", "--resume", tmp_path / "split", "--epochs", "3", "--device", "cuda", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    a = np.load(tmp_path / "straight" / "model.npz", allow_pickle=False)
    b = np.load(tmp_path / "split" / "model.npz", allow_pickle=False)
    for key in a.files:
        if key.startswith(("W", "b", "gamma", "beta")):
            assert np.abs(a[key] - b[key]).max() <= 1e-10 * max(np.abs(a[key]).max(), 1e-30), key


def test_the_same_seed_gives_the_same_float32_weights_on_the_gpu(tmp_path):
    images, labels = synthetic_digits(400, seed=6)
    data = write_digit_csv(tmp_path / "d.csv", images, labels)
    for name in ("a", "b"):
        result = run_cli(
            "fit", "--data", data, "--out", tmp_path / name, "--epochs", "2", "--device", "cuda", "--quiet", *sets(CONV)
        )
        assert result.exit_code == 0, result.output
    a = np.load(tmp_path / "a" / "model.npz", allow_pickle=False)
    b = np.load(tmp_path / "b" / "model.npz", allow_pickle=False)
    assert all(np.array_equal(a[key], b[key]) for key in a.files if key != "meta")


def test_augmentation_distorts_a_batch_on_the_gpu_as_on_the_cpu():
    """The draws are made on the host by the same seeded generator; the resampling and the elastic
    smoothing run on the GPU, where the batch lives, and give the CPU's digits (float64: to 1e-10)."""
    from bp_train.data.augment import Augmenter, augment_rng

    config = load_config(
        None,
        [
            "data.train=unused.csv",
            "model.input_shape=[1, 28, 28]",
            "train.augment={shift: 2, rotate: 10, scale: 0.1, shear: 0.1, elastic: {alpha: 30, sigma: 4}}",
        ],
    )
    images, _ = synthetic_digits(50, seed=4)
    batch = images / 255.0
    cpu = Augmenter(config.train.augment, (1, 28, 28), augment_rng(5))(batch)
    gpu = Augmenter(config.train.augment, (1, 28, 28), augment_rng(5))(cupy.asarray(batch))
    assert isinstance(gpu, cupy.ndarray)
    assert np.abs(cupy.asnumpy(gpu) - cpu).max() < 1e-10
    assert np.abs(cpu - batch).max() > 0.1  # the digits were distorted
