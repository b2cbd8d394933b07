"""Experiment configs: YAML in, typed and checked objects out.

A config has three sections (see `configs/default.yaml` for a commented example):

    model: {input_size, hidden: [{size, activation, dropout, batchnorm}], output_size, init, dtype, input_dropout}
    data:  {train, test, val_fraction, cache}
    train: {epochs, batch_size, optimizer: {name, lr, ...}, schedule: {...}, early_stopping: {...},
            weight_decay, gradient, seed}

Every value is checked when the file is read, so a typo fails at once with the key, the value and what is
allowed, instead of an epoch later with a NumPy traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError

ACTIVATIONS = ("relu", "sigmoid", "tanh")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")
INITS = ("auto", "he", "xavier")
DTYPES = ("float32", "float64")
GRADIENTS = ("backprop", "numerical")
MONITORS = ("val_loss", "val_accuracy")


# --- value checkers: each takes (value, key) and returns the checked value or raises ConfigError ----------

def _fail(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"'{key}' is {value!r}; expected {expected}")


def integer(low: int | None = None, high: int | None = None) -> Callable[[Any, str], int]:
    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "a whole number")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise _fail(key, value, f"a whole number {bounds}")
        return value
    return check


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[Any, str], float]:
    def check(value, key):
        if isinstance(value, str):
            value = _yaml_float(value)  # YAML reads 1e-3 (no dot) as text; users mean the number
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise _fail(key, value, "a number")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = f"{'>' if low_open else '>='} {low}" if low is not None else ""
            right = f"{'<' if high_open else '<='} {high}" if high is not None else ""
            raise _fail(key, value, "a number " + " and ".join(s for s in (left, right) if s))
        return float(value)
    return check


def _yaml_float(text: str):
    """'1e-3' -> 0.001; anything that is not plainly a finite number stays text (and is refused)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value, key):
        if value not in options:
            hint = _nearest(str(value), options)
            raise _fail(key, value, "one of " + ", ".join(options) + hint)
        return value
    return check


def text(value, key):
    if not isinstance(value, str) or not value:
        raise _fail(key, value, "a non-empty string")
    return value


def optional_text(value, key):
    return None if value is None else text(value, key)


def boolean(value, key):
    if not isinstance(value, bool):
        raise _fail(key, value, "true or false")
    return value


def init_scheme(value, key):
    """`init` is a named scheme or a number, the standard deviation of the initial weights."""
    if isinstance(value, str):
        return choice(INITS)(value, key)
    return number(0.0, low_open=True)(value, key)


def _nearest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- the sections ------------------------------------------------------------------------------------------

def spec(check, default, **kw):
    """A dataclass field carrying its checker, so the loader knows how to validate it."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata={"check": check}, **kw)
    return field(default=default, metadata={"check": check}, **kw)


def _copy(value):
    return dataclasses.replace(value) if dataclasses.is_dataclass(value) else type(value)(value)


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
class ModelConfig:
    input_size: int = spec(integer(1), 784)
    hidden: list = spec(hidden_layers, [HiddenLayer()])
    output_size: int = spec(integer(2), 10)
    init: Any = spec(init_scheme, "auto")
    dtype: str = spec(choice(DTYPES), "float32")
    input_dropout: float = spec(number(0.0, 1.0, high_open=True), 0.0)


@dataclass
class DataConfig:
    train: str = spec(text, "data/train.csv")
    test: str | None = spec(optional_text, "data/test.csv")
    val_fraction: float = spec(number(0.0, 1.0, high_open=True), 0.1)
    cache: bool = spec(boolean, True)


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


@dataclass
class Config:
    model: ModelConfig = spec(lambda v, k: section(ModelConfig, v, k), ModelConfig())
    data: DataConfig = spec(lambda v, k: section(DataConfig, v, k), DataConfig())
    train: TrainConfig = spec(lambda v, k: section(TrainConfig, v, k), TrainConfig())
    name: str = spec(text, "default")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.model.input_size, *(h.size for h in self.model.hidden), self.model.output_size]

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
            raise ConfigError(f"unknown key '{where}'{_nearest(str(name), known)}; "
                              f"valid keys here: {', '.join(known)}")
    values = {}
    for name, value in raw.items():
        values[name] = known[name].metadata["check"](value, f"{key}.{name}" if key else name)
    return cls(**values)


# --- loading, overrides, saving ------------------------------------------------------------------------

def parse_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML file safely into a dict, with file and line in every error."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line} YAML syntax error: {problem}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty; expected the sections model, data, train")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with the sections model, data, train; "
                          f"got a {type(raw).__name__}")
    return raw


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `--set section.key=value` to the raw mapping; the value is read as YAML (3, 0.1, relu)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. train.epochs=3")
    dotted, _, value_text = assignment.partition("=")
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {assignment!r}: the key {dotted!r} is not a dotted path like train.epochs")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {assignment!r}: the value {value_text!r} is not valid YAML") from None
    node = raw
    for depth, name in enumerate(keys[:-1]):
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: '{'.'.join(keys[:depth + 1])}' is not a section")
        node = child
    node[keys[-1]] = value


def config_from_dict(raw: dict, source: str = "<config>", name: str | None = None) -> Config:
    """Validate a raw mapping; errors are prefixed with `source` so the user knows which file is at fault."""
    raw = dict(raw)
    if name is not None:
        raw.setdefault("name", name)
    try:
        config = section(Config, raw, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    check_memory(config, source)
    return config


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = (),
                base: dict | None = None) -> Config:
    """Read a YAML config (or, when `path` is None, start from `base` or the built-in defaults) and apply
    `--set` overrides."""
    raw = parse_yaml(path) if path is not None else copy.deepcopy(base or {})
    for assignment in overrides:
        apply_override(raw, assignment)
    name = Path(path).stem if path is not None else "default"
    return config_from_dict(raw, str(path) if path is not None else "--set", name)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# --- refusing what cannot fit --------------------------------------------------------------------------

def estimate_bytes(config: Config) -> int:
    """Rough peak memory of training: weights, gradients and two optimizer slots, plus a batch's activations."""
    sizes = config.layer_sizes
    itemsize = 4 if config.model.dtype == "float32" else 8
    weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    activations = config.train.batch_size * sum(sizes) * 4  # outputs, masks, gradients, scratch
    return (weights * 4 + activations) * itemsize


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(config: Config, source: str) -> None:
    need, have = estimate_bytes(config), available_memory()
    if need > have:
        raise ConfigError(f"{source}: model.hidden: this network needs about {need / 2**30:.1f} GiB to train "
                          f"(layer sizes {config.layer_sizes}, batch {config.train.batch_size}), "
                          f"more than the {have / 2**30:.1f} GiB available; use smaller layers")
