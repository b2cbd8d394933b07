"""The batch split over two threads (training/split.py) computes Network.gradient's function: the same
gradients, loss, probabilities, BatchNorm running averages and dropout draws, for every conv block shape
the shipped configs use, odd batches included; and a training run that uses it is the same run to run and
resumes exactly."""

import numpy as np
import pytest
from conftest import ROOT, run_cli
from test_fast_layers import lesson_network_like, parameter_error

from bp_train.config import build_network, load_config
from bp_train.nn import layers as L
from bp_train.training.split import SplitNetwork, splittable

CNN_CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml") if "conv:" in p.read_text())


def pair(name, dtype, **overrides):
    """Two networks of one config with the same weights and generators, the BatchNorm running averages of
    a trained one (not the initial 0 and 1)."""
    sets = [f"model.dtype={dtype}", *(f"{k}={v}" for k, v in overrides.items())]
    config = load_config(ROOT / "configs" / f"{name}.yaml", sets)
    networks = [build_network(config, seed=4), build_network(config, seed=4)]
    rng = np.random.default_rng(1)
    for key, buffer in networks[0].buffers.items():
        buffer[...] = rng.uniform(0.5, 1.5, buffer.shape) if "var" in key else rng.normal(0, 0.1, buffer.shape)
        networks[1].buffers[key][...] = buffer
    return networks


@pytest.mark.parametrize("batch", [1, 2, 101])
@pytest.mark.parametrize("name", CNN_CONFIGS)
def test_the_halves_compute_network_gradient_in_float64(name, batch):
    whole, split = pair(name, "float64", **{"train.weight_decay": 0.001})
    assert splittable(split)
    halves = SplitNetwork(split)
    rng = np.random.default_rng(batch)
    try:
        for _ in range(2):  # twice: the second with running averages and generators moved by the first
            x, t = rng.random((batch, 784)), rng.integers(0, 10, batch)
            expected = {key: grad.copy() for key, grad in whole.gradient(x, t).items()}
            got = halves.gradient(x, t)
            for key, grad in expected.items():
                np.testing.assert_allclose(got[key], grad, rtol=1e-10, atol=1e-12 * np.abs(grad).max(), err_msg=key)
            assert split.last_loss == pytest.approx(whole.last_loss, rel=1e-12)
            np.testing.assert_allclose(split.last_layer.y, whole.last_layer.y, rtol=1e-10, atol=1e-14)
            for key, buffer in whole.buffers.items():
                np.testing.assert_allclose(split.buffers[key], buffer, rtol=1e-12, atol=1e-14, err_msg=key)
        assert whole.dropout_rng.random() == split.dropout_rng.random()  # the same draws, in the same order
    finally:
        halves.close()


@pytest.mark.parametrize("batch", [1, 101])
@pytest.mark.parametrize("name", CNN_CONFIGS)
def test_the_halves_give_the_lesson_layers_gradients_on_the_same_weights(name, batch):
    """The oracle itself: the lesson's Convolution, BatchNorm, Affine and Dropout rebuilt on the same arrays
    (and the same dropout mask), run forward and back on the whole batch, against the halves."""
    network = pair(name, "float64")[1]
    halves = SplitNetwork(network)
    rng = np.random.default_rng(batch)
    x, t = rng.random((batch, 784)), rng.integers(0, 10, batch)
    try:
        got = {key: grad.copy() for key, grad in halves.gradient(x, t).items()}
    finally:
        halves.close()
    layers = lesson_network_like(network)
    out = x
    for layer in layers:
        out = layer.forward(out)
    head = L.SoftmaxWithLoss()
    assert head.forward(out, t) + network.penalty() == pytest.approx(network.last_loss, rel=1e-12)
    dout = head.backward(1.0)
    for layer in reversed(layers):
        dout = layer.backward(dout)
    for layer_name, lesson in zip(network.layers, layers):
        for param, key in network.keys.get(layer_name, {}).items():
            decay = network.weight_decay * network.params[key] if key in network.weight_keys else 0
            assert parameter_error(got[key], getattr(lesson, "d" + param) + decay) < 1e-10, key


@pytest.mark.parametrize("batchnorm", [False, True])
def test_in_float32_the_halves_are_as_close_to_the_exact_gradient_as_the_whole_batch(batchnorm):
    """Float32 rounding, not a different function: measured against the float64 gradient of the same
    weights, the halves' float32 error is of the size of the whole batch's own."""
    overrides = {"model.conv[0].batchnorm": str(batchnorm).lower()}
    whole, split = pair("fast-cnn", "float32", **overrides)
    exact = pair("fast-cnn", "float64", **overrides)[0]
    exact.load_state(whole.state())
    halves = SplitNetwork(split)
    rng = np.random.default_rng(0)
    x, t = rng.random((101, 784)).astype(np.float32), rng.integers(0, 10, 101)
    try:
        truth = {key: grad.astype(np.float64) for key, grad in exact.gradient(x.astype(np.float64), t).items()}
        expected = {key: grad.copy() for key, grad in whole.gradient(x, t).items()}
        got = halves.gradient(x, t)
    finally:
        halves.close()
    for key, grad in truth.items():
        scale = np.abs(grad).max()
        whole_error = np.abs(expected[key] - grad).max() / scale
        split_error = np.abs(got[key] - grad).max() / scale
        assert split_error <= 3 * whole_error + 1e-6, (key, split_error, whole_error)


def test_a_failure_in_one_half_is_raised_and_the_other_half_does_not_hang(monkeypatch):
    _, split = pair("cnn", "float64")
    halves = SplitNetwork(split)
    broken = halves.halves[1][3]
    monkeypatch.setattr(broken, "forward", lambda x: (_ for _ in ()).throw(FloatingPointError("planted")))
    try:
        with pytest.raises(FloatingPointError, match="planted"):
            halves.gradient(np.zeros((4, 784)), np.zeros(4, dtype=int))
    finally:
        halves.close()


def cnn_config(tmp_path, digits_csv):
    path = tmp_path / "cnn.yaml"
    path.write_text(f"""
name: small-cnn
model:
  input_shape: [1, 28, 28]
  conv: [{{filters: 6, kernel: 3, pad: 1, pool: 2}}, {{filters: 8, kernel: 3, pad: 1, pool: 2, batchnorm: true}}]
  hidden: [{{size: 16, dropout: 0.5}}]
data: {{train: {digits_csv}, val_fraction: 0.2}}
train: {{epochs: 2, batch_size: 50, optimizer: {{name: adam, lr: 0.002}}, seed: 3}}
""")
    return path


def weights(run):
    with np.load(run / "model.npz") as saved:
        return {k: saved[k].copy() for k in saved.files if k != "meta"}


def test_a_cnn_trained_on_two_threads_is_the_same_run_to_run_and_resumes_exactly(tmp_path, digits_csv):
    config = cnn_config(tmp_path, digits_csv)
    runs = {}
    for name, extra in {"a": [], "b": []}.items():
        result = run_cli("fit", "--config", config, "--out", tmp_path / name, "--threads", "2", "--quiet", *extra)
        assert result.exit_code == 0, result.stderr
        runs[name] = weights(tmp_path / name)
    first = run_cli("fit", "--config", config, "--out", tmp_path / "c", "--threads", "2", "--epochs", "1", "--quiet")
    assert first.exit_code == 0
    resumed = run_cli("fit", "--resume", tmp_path / "c", "--threads", "2", "--epochs", "2", "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    runs["resumed"] = weights(tmp_path / "c")
    for key, value in runs["a"].items():
        np.testing.assert_array_equal(runs["b"][key], value)
        np.testing.assert_array_equal(runs["resumed"][key], value)


def test_the_trainer_splits_a_cnns_batch_on_two_threads_only(tmp_path, digits_csv):
    from bp_train.machine.threads import blas_threads
    from bp_train.training.trainer import Trainer

    config = load_config(cnn_config(tmp_path, digits_csv))
    for threads, splits in ((2, True), (1, False)):
        with blas_threads(threads):
            trainer = Trainer(config, tmp_path / f"run{threads}", show_progress=False)
            assert (trainer.batch_halves() is not None) == splits
    mlp = load_config(None, [f"data.train={digits_csv}"])
    with blas_threads(2):
        assert Trainer(mlp, tmp_path / "mlp", show_progress=False).batch_halves() is None
