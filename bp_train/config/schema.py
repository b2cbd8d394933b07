"""Experiment configs: the schema, as dataclasses whose every field carries its checker.

A config has three sections (see `configs/default.yaml` for a commented example):

    model: {input_size, input_shape, conv: [{filters, kernel, stride, pad, activation, pool, batchnorm, dropout}],
            hidden: [{size, activation, dropout, batchnorm}], output_size, init, dtype, input_dropout, loss}
    data:  {train, test, val_fraction, cache, train_rows}
    train: {epochs, batch_size, optimizer: {name, lr, ...}, schedule: {...}, early_stopping: {...},
            weight_decay, gradient, seed, augment: {shift, rotate, scale, shear, elastic: {alpha, sigma}}}

Every value is checked when the file is read (loading.py), so a typo fails at once with the key, the
value and what is allowed, instead of an epoch later with a NumPy traceback. The choices a network offers
(activations, losses, optimizers, schedules) are read from the lesson's own lists in bp_train/nn/, so a
new optimizer there is a new choice here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..nn import losses, network, optimizers
from ..nn.backend import DEVICES
from .checks import _fail, _nearest, boolean, choice, integer, number, optional_text, run_name, spec, text
from .safeyaml import short

ACTIVATIONS = tuple(network.ACTIVATIONS)
OPTIMIZERS = tuple(optimizers.OPTIMIZERS)
SCHEDULES = tuple(optimizers.SCHEDULES)
INITS = network.INITS
LOSSES = tuple(losses.LOSSES)
DTYPES = ("float32", "float64")
GRADIENTS = ("backprop", "numerical")
MONITORS = ("val_loss", "val_accuracy")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
PRUNERS = ("median", "none")
SAMPLERS = ("tpe", "random")
# The keys each optimizer and schedule reads: a saved config.yaml shows only these.
OPTIMIZER_KEYS = {name: optimizers.hyperparameters(name) for name in OPTIMIZERS}
SCHEDULE_KEYS = {name: ("warmup_epochs", *keys) for name, keys in optimizers.SCHEDULES.items()}


# --- the sections ------------------------------------------------------------------------------------------


def init_scheme(value, key):
    """`init` is a named scheme or a number, the standard deviation of the initial weights."""
    if isinstance(value, str):
        return choice(INITS)(value, key)
    return number(0.0, low_open=True)(value, key)


@dataclass
class HiddenLayer:
    size: int = spec(integer(1), 100)
    activation: str = spec(choice(ACTIVATIONS), "relu")
    dropout: float = spec(number(0.0, 1.0, high_open=True), 0.0)
    batchnorm: bool = spec(boolean, False)


def hidden_layers(value, key):
    if not isinstance(value, list):
        raise _fail(key, value, "a list of layers such as [{size: 100, activation: relu}]")
    return [section(HiddenLayer, item, f"{key}[{i}]") for i, item in enumerate(value)]


@dataclass
class ConvBlock:
    """Convolution -> [BatchNorm] -> activation -> [max pool] -> [Dropout]."""

    filters: int = spec(integer(1, 4096), 32)
    kernel: int = spec(integer(1, 64), 3)
    stride: int = spec(integer(1, 64), 1)
    pad: int = spec(integer(0, 64), 0)
    activation: str = spec(choice(ACTIVATIONS), "relu")
    pool: int = spec(integer(0, 64), 0)  # 0 or 1: no pooling; k: k x k max pooling with stride k
    batchnorm: bool = spec(boolean, False)
    dropout: float = spec(number(0.0, 1.0, high_open=True), 0.0)


def conv_blocks(value, key):
    if not isinstance(value, list):
        raise _fail(key, value, "a list of conv blocks such as [{filters: 32, kernel: 3, pad: 1, pool: 2}]")
    return [section(ConvBlock, item, f"{key}[{i}]") for i, item in enumerate(value)]


def image_shape(value, key):
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
    ):
        raise _fail(key, value, "[channels, height, width], three whole numbers >= 1, e.g. [1, 28, 28]")
    return list(value)


@dataclass
class ModelConfig:
    input_size: int = spec(integer(1), 784)
    input_shape: list = spec(image_shape, [1, 28, 28])  # [C, H, W] of a row, for convolutions
    conv: list = spec(conv_blocks, [])
    hidden: list = spec(hidden_layers, [HiddenLayer()])
    output_size: int = spec(integer(2), 10)
    init: Any = spec(init_scheme, "auto")
    dtype: str = spec(choice(DTYPES), "float32")
    input_dropout: float = spec(number(0.0, 1.0, high_open=True), 0.0)
    loss: str = spec(choice(LOSSES), "softmax_cross_entropy")  # the output and loss: see losses.py


@dataclass
class DataConfig:
    train: str = spec(text, "data/train.csv")
    test: str | None = spec(optional_text, "data/test.csv")
    val_fraction: float = spec(number(0.0, 1.0, high_open=True), 0.1)
    cache: bool = spec(boolean, True)
    train_rows: int | None = spec(lambda v, k: None if v is None else integer(1)(v, k), None)  # first N rows only


@dataclass
class OptimizerConfig:
    name: str = spec(choice(OPTIMIZERS), "sgd")
    lr: float = spec(number(0.0, low_open=True), 0.1)
    momentum: float = spec(number(0.0, 1.0, high_open=True), 0.9)
    beta1: float = spec(number(0.0, 1.0, high_open=True), 0.9)
    beta2: float = spec(number(0.0, 1.0, high_open=True), 0.999)
    decay: float = spec(number(0.0, 1.0, high_open=True), 0.99)
    eps: float = spec(number(0.0, low_open=True), 1e-8)


@dataclass
class ScheduleConfig:
    name: str = spec(choice(SCHEDULES), "constant")
    warmup_epochs: float = spec(number(0.0), 0.0)
    step_size: int = spec(integer(1), 10)
    gamma: float = spec(number(0.0, 1.0, low_open=True), 0.1)
    min_lr: float = spec(number(0.0), 0.0)


@dataclass
class EarlyStoppingConfig:
    metric: str = spec(choice(MONITORS), "val_loss")
    patience: int = spec(integer(1), 5)
    min_delta: float = spec(number(0.0), 0.0)


@dataclass
class ElasticConfig:
    alpha: float = spec(number(0.0, 1000.0), 34.0)  # scale of the displacement field, in pixels
    sigma: float = spec(number(0.0, 100.0, low_open=True), 4.0)  # width of its Gaussian smoothing


@dataclass
class AugmentConfig:
    shift: float = spec(number(0.0, 100.0), 0.0)  # pixels, each direction drawn in [-shift, shift]
    rotate: float = spec(number(0.0, 180.0), 0.0)  # degrees, drawn in [-rotate, rotate]
    scale: float = spec(number(0.0, 1.0, high_open=True), 0.0)  # size factor drawn in [1 - scale, 1 + scale]
    shear: float = spec(number(0.0, 1.0), 0.0)  # slant x += k y, k drawn in [-shear, shear]
    elastic: ElasticConfig | None = spec(lambda v, k: None if v is None else section(ElasticConfig, v, k), None)


def optional_section(cls):
    def check(value, key):
        return None if value is None else section(cls, value, key)

    return check


@dataclass
class TrainConfig:
    epochs: int = spec(integer(1, 100_000), 10)
    batch_size: int = spec(integer(1), 100)
    optimizer: OptimizerConfig = spec(lambda v, k: section(OptimizerConfig, v, k), OptimizerConfig())
    schedule: ScheduleConfig = spec(lambda v, k: section(ScheduleConfig, v, k), ScheduleConfig())
    early_stopping: EarlyStoppingConfig | None = spec(optional_section(EarlyStoppingConfig), None)
    weight_decay: float = spec(number(0.0), 0.0)
    gradient: str = spec(choice(GRADIENTS), "backprop")
    seed: int = spec(integer(0, 2**32 - 1), 0)
    augment: AugmentConfig | None = spec(lambda v, k: None if v is None else section(AugmentConfig, v, k), None)
    device: str = spec(choice(DEVICES), "cpu")  # cuda: CuPy on an NVIDIA GPU (see backend.py)


def distribution(value, key):
    """One dimension of a search space: {uniform: [low, high]}, {log_uniform: [low, high]} (low > 0),
    {int: [low, high]}, {log_int: [low, high]} (low >= 1) or {choice: [a, b, ...]}."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _fail(
            key, value, "one distribution, e.g. {log_uniform: [0.0001, 0.1]}; one of " + ", ".join(DISTRIBUTIONS)
        )
    ((kind, args),) = value.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"unknown distribution {short(f'{key}.{kind}')}{_nearest(str(kind)[:100], DISTRIBUTIONS)}; "
            f"expected one of {', '.join(DISTRIBUTIONS)}"
        )
    where = f"{key}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise _fail(where, args, "a non-empty list of values to choose from")
        return {kind: args}
    if not isinstance(args, list) or len(args) != 2:
        raise _fail(where, args, "[low, high]")
    whole = kind in ("int", "log_int")
    check = (
        integer(1 if kind == "log_int" else None)
        if whole
        else number(0.0 if kind == "log_uniform" else None, low_open=kind == "log_uniform")
    )
    low, high = check(args[0], where + "[0]"), check(args[1], where + "[1]")
    if not low < high:
        raise _fail(where, args, "[low, high] with low < high")
    return {kind: [low, high]}


def search_space(value, key):
    if not isinstance(value, dict) or not value:
        raise _fail(
            key,
            value,
            "a mapping of config keys to distributions, e.g. {train.optimizer.lr: {log_uniform: [0.0001, 0.1]}}",
        )
    return {str(k): distribution(v, f"{key}.{k}") for k, v in value.items()}


@dataclass
class TuneConfig:
    """`bp-train tune`: which metric to optimize, how many trials, and the space of config values to try."""

    space: dict = spec(search_space, {})
    metric: str = spec(choice(MONITORS), "val_accuracy")
    trials: int = spec(integer(1, 100_000), 20)
    pruner: str = spec(choice(PRUNERS), "median")
    startup_trials: int = spec(integer(0, 100_000), 5)  # trials the median pruner lets finish before judging
    min_epochs: int = spec(integer(1, 100_000), 3)  # epochs every trial runs before the pruner may stop it
    sampler: str = spec(choice(SAMPLERS), "tpe")  # tpe: Optuna's default; random: the textbook's random search


@dataclass
class Config:
    model: ModelConfig = spec(lambda v, k: section(ModelConfig, v, k), ModelConfig())
    data: DataConfig = spec(lambda v, k: section(DataConfig, v, k), DataConfig())
    train: TrainConfig = spec(lambda v, k: section(TrainConfig, v, k), TrainConfig())
    name: str = spec(run_name, "default")
    tune: TuneConfig | None = spec(lambda v, k: None if v is None else section(TuneConfig, v, k), None)

    @property
    def layer_sizes(self) -> list[int]:
        """[input pixels, hidden sizes..., classes] (a CNN's first dense layer takes the flattened maps its
        last conv block leaves instead of the pixels: see build.py)."""
        return [self.model.input_size, *(h.size for h in self.model.hidden), self.model.output_size]

    def describe_layers(self) -> str:
        """'784-100-10', or for a CNN '1x28x28-conv32-pool2-conv64-pool2-128-10'."""
        if not self.model.conv:
            return "-".join(map(str, self.layer_sizes))
        parts = ["x".join(map(str, self.model.input_shape))]
        for block in self.model.conv:
            parts.append(f"conv{block.filters}" + (f"-pool{block.pool}" if block.pool > 1 else ""))
        return "-".join(parts + [str(s) for s in self.layer_sizes[1:]])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def section(cls, raw, key: str):
    """Build dataclass `cls` from mapping `raw`, checking every key and value; `key` locates it in the file."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(key or "the config", raw, "a mapping of keys to values")
    known = {f.name: f for f in fields(cls)}
    for name in raw:
        if name not in known:
            where = f"{key}.{name}" if key else str(name)
            raise ConfigError(
                f"unknown key {short(where)}{_nearest(str(name)[:100], known)}; valid keys here: {', '.join(known)}"
            )
    values = {}
    for name, value in raw.items():
        values[name] = known[name].metadata["check"](value, f"{key}.{name}" if key else name)
    return cls(**values)
