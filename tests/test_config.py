"""Configs: every mistake is one clear message naming the file, the key and what is allowed."""

import pytest
from conftest import ROOT, run_cli

from bp_train.config import load_config
from bp_train.errors import ConfigError


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["default", "sigmoid", "deep", "mlp-800-800"])
def test_shipped_configs_load(name):
    config = load_config(ROOT / "configs" / f"{name}.yaml")
    assert config.name == name
    assert config.layer_sizes[0] == 784 and config.layer_sizes[-1] == 10


def test_defaults_match_the_documented_shape():
    config = load_config()
    assert config.layer_sizes == [784, 100, 10]
    assert (config.model.dtype, config.data.train, config.data.val_fraction) == ("float32", "data/train.csv", 0.1)
    assert (config.train.epochs, config.train.batch_size, config.train.optimizer.name) == (10, 100, "sgd")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model: {hiden: []}", r"unknown key 'model.hiden' \(did you mean 'hidden'\?\)"),
        ("trian: {}", r"unknown key 'trian' \(did you mean 'train'\?\)"),
        ("train: {epochs: ten}", r"'train.epochs' is 'ten'; expected a whole number"),
        ("train: {epochs: 0}", r"'train.epochs' is 0; expected a whole number between 1 and"),
        ("train: {batch_size: 2.5}", r"'train.batch_size' is 2.5; expected a whole number"),
        ("model: {hidden: [{size: -3}]}", r"'model.hidden\[0\].size' is -3; expected a whole number >= 1"),
        ("model: {hidden: [{size: 0}]}", r"'model.hidden\[0\].size' is 0"),
        (
            "model: {hidden: [{size: 5, activation: relux}]}",
            r"expected one of relu, sigmoid, tanh \(did you mean 'relu'\?\)",
        ),
        ("train: {optimizer: {name: adamw}}", r"'train.optimizer.name' is 'adamw'; expected one of .*adam"),
        ("train: {optimizer: {lr: -0.1}}", r"'train.optimizer.lr' is -0.1; expected a number > 0"),
        ("data: {val_fraction: 1.0}", r"'data.val_fraction' is 1.0; expected a number >= 0.0 and < 1.0"),
        ("model: {dtype: float16}", r"'model.dtype' is 'float16'; expected one of float32, float64"),
        ("model: {hidden: {size: 5}}", r"'model.hidden' is .*; expected a list of layers"),
        ("model: [1, 2]", r"'model' is \[1, 2\]; expected a mapping"),
        ("train: {early_stopping: {metric: accuracy}}", r"did you mean 'val_accuracy'"),
    ],
)
def test_each_bad_value_names_file_key_value_and_what_is_allowed(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "model:\n  input_size: 784\n  hidden: [{size: 3\ntrain: {}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: line \d+, column \d+: YAML syntax error"):
        load_config(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("- a\n- b\n", "expected a mapping"),
        ("42", "expected a mapping"),
    ],
)
def test_empty_or_non_mapping_files_are_refused(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such/config.yaml")


def test_a_network_too_large_for_memory_is_refused_up_front_with_the_estimate(tmp_path):
    from bp_train.training.memory import check_training_memory

    config = load_config(write(tmp_path, "model: {hidden: [{size: 2000000}, {size: 2000000}]}"))  # reads fine
    with pytest.raises(
        ConfigError,
        match=r"needs about [\d.]+ GiB .* more than the [\d.]+ GiB available; "
        r"model.hidden: the dense layers",
    ):
        check_training_memory(config)
    result = run_cli(
        "fit",
        "--config",
        write(tmp_path, "model: {hidden: [{size: 2000000}, {size: 2000000}]}"),
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 2 and "GiB available" in result.stderr and not (tmp_path / "run").exists()


def test_a_cnn_too_large_for_memory_names_its_conv_blocks_and_its_model_file_still_loads(tmp_path):
    from bp_train.training.memory import check_training_memory

    config = load_config(
        write(tmp_path, "model: {conv: [{filters: 64, kernel: 3, pad: 1, pool: 4}]}\ntrain: {batch_size: 100}")
    )
    check_training_memory(config)
    with pytest.raises(ConfigError, match=r"model.conv: the convolution blocks need about"):
        check_training_memory(config, have=2**20)  # a machine with 1 MiB free
    # A model file is not a training run: it loads wherever its weights fit, whatever training would need.
    import bp_train.training.memory
    from bp_train.config import build_network
    from bp_train.files.model import load_model, save_model

    save_model(tmp_path / "model.npz", build_network(config), config.to_dict())
    real = bp_train.training.memory.available_memory
    bp_train.training.memory.available_memory = lambda: 2**20
    try:
        network, loaded, _ = load_model(tmp_path / "model.npz")
    finally:
        bp_train.training.memory.available_memory = real
    assert loaded.model.conv[0].filters == 64 and network.params["W1"].shape == (3, 3, 1, 64)


def test_exponent_notation_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; a user writing it means 0.001.
    config = load_config(write(tmp_path, "train: {optimizer: {lr: 1e-3}, weight_decay: 5E-4}"))
    assert config.train.optimizer.lr == 0.001 and config.train.weight_decay == 0.0005
    with pytest.raises(ConfigError, match="'train.optimizer.lr' is 'nan'; expected a finite number"):
        load_config(write(tmp_path, "train: {optimizer: {lr: nan}}"))


def test_overrides_set_nested_values_and_are_checked():
    config = load_config(
        None,
        ["train.optimizer.lr=0.05", "model.hidden=[{size: 7, activation: tanh}]", "train.early_stopping.patience=2"],
    )
    assert config.train.optimizer.lr == 0.05
    assert config.layer_sizes == [784, 7, 10] and config.model.hidden[0].activation == "tanh"
    assert config.train.early_stopping.patience == 2
    with pytest.raises(ConfigError, match="unknown key 'train.epoch' \\(did you mean 'epochs'\\?\\)"):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_cli_reports_a_bad_config_in_one_line_with_exit_code_2(tmp_path):
    path = write(tmp_path, "train: {optimiser: {name: sgd}}")
    result = run_cli("fit", "--config", path, cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "unknown key 'train.optimiser' (did you mean 'optimizer'?)" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing written for a refused config
