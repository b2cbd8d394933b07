"""The array backend on the CPU: NumPy stays the default and untouched, and `--device cuda` without CuPy or
without a GPU is one line and exit code 2 (the GPU itself is tested in test_gpu.py)."""

import sys
import types

import numpy as np

from bp_train.backend import array_module, like, module_of, to_device, to_host

from conftest import run_cli


def test_numpy_is_the_cpu_module_and_moving_costs_nothing_there():
    x = np.arange(6.0).reshape(2, 3)
    assert array_module("cpu") is np and module_of(x) is np
    assert to_device(x, np) is x and to_host(x) is x and like(x, x) is x


def test_device_cuda_without_cupy_is_one_line_naming_the_install(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now fails, as where it is not installed
    for args in (["fit", "--config", tiny_config, "--out", tmp_path / "run"],
                 ["gradcheck", "--config", tiny_config, "--batch", "2"],
                 ["compare-speed", "--config", tiny_config, "--sizes", "3"]):
        result = run_cli(*args, "--device", "cuda")
        assert result.exit_code == 2, args
        assert "needs CuPy, which is not installed: pip install 'bp-train[gpu]'" in result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_device_cuda_without_a_gpu_says_so(tmp_path, tiny_config, monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    result = run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--device", "cuda")
    assert result.exit_code == 2 and "finds no usable NVIDIA GPU (cudaErrorNoDevice" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_model_trained_with_device_cuda_in_its_config_loads_on_the_cpu(tmp_path, tiny_config, digits_csv):
    # train.device says where to train, not what the weights are: a GPU run's model predicts anywhere.
    from bp_train.store import load_model, save_model
    assert run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--quiet").exit_code == 0
    network, config, _ = load_model(tmp_path / "run" / "model.npz")
    saved = config.to_dict()
    saved["train"]["device"] = "cuda"
    save_model(tmp_path / "gpu.npz", network, saved)
    result = run_cli("predict", "--model", tmp_path / "gpu.npz", "--data", digits_csv, "--out", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output


def test_a_bad_device_in_the_config_names_the_key(tmp_path, tiny_config):
    result = run_cli("fit", "--config", tiny_config, "--set", "train.device=gpu", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "'train.device' is 'gpu'; expected one of cpu, cuda" in result.stderr


def test_a_run_resumes_on_another_device_setting(tmp_path, tiny_config):
    assert run_cli("fit", "--config", tiny_config, "--out", tmp_path / "run", "--epochs", "1",
                   "--quiet").exit_code == 0
    result = run_cli("fit", "--resume", tmp_path / "run", "--epochs", "2", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
