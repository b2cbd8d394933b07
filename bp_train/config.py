"""Experiment configs: YAML in, typed and checked objects out.

A config has three sections (see `configs/default.yaml` for a commented example):

    model: {input_size, input_shape, conv: [{filters, kernel, stride, pad, activation, pool, batchnorm, dropout}],
            hidden: [{size, activation, dropout, batchnorm}], output_size, init, dtype, input_dropout}
    data:  {train, test, val_fraction, cache}
    train: {epochs, batch_size, optimizer: {name, lr, ...}, schedule: {...}, early_stopping: {...},
            weight_decay, gradient, seed, augment: {shift, rotate, scale, shear, elastic: {alpha, sigma}}}

Every value is checked when the file is read, so a typo fails at once with the key, the value and what is
allowed, instead of an epoch later with a NumPy traceback.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from . import safeyaml
from .conv import output_size
from .backend import DEVICES
from .checks import (_fail, integer, number, choice, text, run_name, optional_text, boolean, _nearest, spec)
from .errors import ConfigError
from .safeyaml import short

ACTIVATIONS = ("relu", "sigmoid", "tanh")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")
INITS = ("auto", "he", "xavier")
DTYPES = ("float32", "float64")
GRADIENTS = ("backprop", "numerical")
MONITORS = ("val_loss", "val_accuracy")
LOSSES = ("softmax_cross_entropy", "softmax_then_cross_entropy", "mse")
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "log_int", "choice")
PRUNERS = ("median", "none")
SAMPLERS = ("tpe", "random")
# The keys each optimizer and schedule reads: a saved config.yaml shows only these.
OPTIMIZER_KEYS = {"sgd": ("lr",), "momentum": ("lr", "momentum"), "nesterov": ("lr", "momentum"),
                  "adagrad": ("lr", "eps"), "rmsprop": ("lr", "decay", "eps"), "adam": ("lr", "beta1", "beta2", "eps")}
SCHEDULE_KEYS = {"constant": ("warmup_epochs",), "step": ("warmup_epochs", "step_size", "gamma"),
                 "cosine": ("warmup_epochs", "min_lr")}
# Learning rates that usually work, per optimizer: plain and momentum SGD want rates 100x Adam's.
TYPICAL_LR = {"sgd": (0.01, 1.0), "momentum": (0.005, 0.5), "nesterov": (0.005, 0.5), "adagrad": (0.005, 0.5),
              "rmsprop": (1e-4, 0.01), "adam": (1e-4, 0.01)}


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
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)):
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
    alpha: float = spec(number(0.0, 1000.0), 34.0)         # scale of the displacement field, in pixels
    sigma: float = spec(number(0.0, 100.0, low_open=True), 4.0)  # width of its Gaussian smoothing


@dataclass
class AugmentConfig:
    shift: float = spec(number(0.0, 100.0), 0.0)     # pixels, each direction drawn in [-shift, shift]
    rotate: float = spec(number(0.0, 180.0), 0.0)    # degrees, drawn in [-rotate, rotate]
    scale: float = spec(number(0.0, 1.0, high_open=True), 0.0)  # size factor drawn in [1 - scale, 1 + scale]
    shear: float = spec(number(0.0, 1.0), 0.0)       # slant x += k y, k drawn in [-shear, shear]
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
        raise _fail(key, value, "one distribution, e.g. {log_uniform: [0.0001, 0.1]}; one of " + ", ".join(DISTRIBUTIONS))
    (kind, args), = value.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"unknown distribution {short(f'{key}.{kind}')}{_nearest(str(kind)[:100], DISTRIBUTIONS)}; "
                          f"expected one of {', '.join(DISTRIBUTIONS)}")
    where = f"{key}.{kind}"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise _fail(where, args, "a non-empty list of values to choose from")
        return {kind: args}
    if not isinstance(args, list) or len(args) != 2:
        raise _fail(where, args, "[low, high]")
    whole = kind in ("int", "log_int")
    check = integer(1 if kind == "log_int" else None) if whole else number(0.0 if kind == "log_uniform" else None,
                                                                         low_open=kind == "log_uniform")
    low, high = check(args[0], where + "[0]"), check(args[1], where + "[1]")
    if not low < high:
        raise _fail(where, args, "[low, high] with low < high")
    return {kind: [low, high]}


def search_space(value, key):
    if not isinstance(value, dict) or not value:
        raise _fail(key, value, "a mapping of config keys to distributions, e.g. {train.optimizer.lr: "
                                "{log_uniform: [0.0001, 0.1]}}")
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
        """[input pixels, hidden sizes..., classes]: the dense layers' widths (a CNN's first dense layer
        takes the flattened maps of `conv_shapes()[-1]` instead of the pixels)."""
        return [self.model.input_size, *(h.size for h in self.model.hidden), self.model.output_size]

    def describe_layers(self) -> str:
        """'784-100-10', or for a CNN '1x28x28-conv32-pool2-conv64-pool2-128-10'."""
        if not self.model.conv:
            return "-".join(map(str, self.layer_sizes))
        parts = ["x".join(map(str, self.model.input_shape))]
        for block in self.model.conv:
            parts.append(f"conv{block.filters}" + (f"-pool{block.pool}" if block.pool > 1 else ""))
        return "-".join(parts + [str(s) for s in self.layer_sizes[1:]])

    def conv_shapes(self) -> list[tuple[int, int, int]]:
        """(H, W, C) of the input and of the maps each conv block leaves (after its pooling)."""
        channels, height, width = self.model.input_shape
        shapes = [(height, width, channels)]
        for block in self.model.conv:
            height, width = (output_size(side, block.kernel, block.stride, block.pad) for side in (height, width))
            if block.pool > 1:
                height, width = height // block.pool, width // block.pool
            shapes.append((height, width, block.filters))
        return shapes

    def dense_input_size(self) -> int:
        height, width, channels = self.conv_shapes()[-1]
        return height * width * channels if self.model.conv else self.model.input_size

    def weight_count(self) -> int:
        """How many weights (W1, W2, ...) the network has: a lower bound of what its model file holds."""
        count = sum(b.kernel * b.kernel * c * b.filters for b, (_, _, c) in zip(self.model.conv, self.conv_shapes()))
        sizes = [self.dense_input_size(), *self.layer_sizes[1:]]
        return count + sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    def flops_per_sample(self) -> int:
        """Floating-point operations of one forward pass per sample: 2 per multiply-add of every
        convolution and dense product (activations, pooling and the loss are not counted)."""
        flops = 0
        for block, (h_in, w_in, c_in) in zip(self.model.conv, self.conv_shapes()):
            oh = output_size(h_in, block.kernel, block.stride, block.pad)
            ow = output_size(w_in, block.kernel, block.stride, block.pad)
            flops += 2 * oh * ow * block.kernel * block.kernel * c_in * block.filters
        sizes = [self.dense_input_size(), *self.layer_sizes[1:]]
        return flops + sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))

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
            raise ConfigError(f"unknown key {short(where)}{_nearest(str(name)[:100], known)}; "
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
        raw = safeyaml.load(source)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
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


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def parse_key(dotted: str, label: str) -> list[str | int]:
    """'model.hidden[0].size' -> ['model', 'hidden', 0, 'size']. `label` starts any error ('--set ...')."""
    path: list[str | int] = []
    for part in dotted.strip().split("."):
        match = _KEY_PART.match(part)
        if match is None:
            raise ConfigError(f"{label}: the key {short(dotted)} is not a dotted path like train.epochs "
                              "or model.hidden[0].size")
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\d+", match.group(2)))
    return path


def _default_at(path: list[str | int]):
    """The built-in default at a key path (a copy), or None: lets --set index a list the file leaves out."""
    node = Config().to_dict()
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return copy.deepcopy(node)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `--set key=value` to the raw mapping; the value is read as YAML (3, 0.1, relu, [1, 2]).
    Keys are dotted paths and may index lists: `model.hidden[0].size=64`."""
    if "=" not in assignment:
        raise ConfigError(f"--set {short(assignment)}: expected KEY=VALUE, e.g. train.epochs=3")
    dotted, _, value_text = assignment.partition("=")
    label = f"--set {short(assignment)}"
    path = parse_key(dotted, label)
    try:
        value = safeyaml.load(value_text) if value_text.strip() else None
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{label}: the value is not valid YAML") from None
    assign(raw, path, value, label)


def assign(raw: dict, path: list[str | int], value, label: str) -> None:
    """Set `value` at `path` (from parse_key) in the raw mapping, creating sections on the way; an error
    starts with `label` (the --set or tune.space key it came from)."""
    node = raw
    for depth, step in enumerate(path[:-1]):
        where = _path_text(path[:depth + 1])
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(f"{label}: '{_path_text(path[:depth])}' has {size} item(s); "
                                  f"index {step} is out of range")
            child = node[step]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"{label}: '{_path_text(path[:depth])}' is not a section")
            child = node.get(step)
            if child is None:
                child = node[step] = _default_at(path[:depth + 1]) if isinstance(path[depth + 1], int) else {}
                if child is None:
                    raise ConfigError(f"{label}: '{where}' is not a list")
        node = child
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"{label}: '{_path_text(path[:-1])}' has no item {last}")
    elif not isinstance(node, dict):
        raise ConfigError(f"{label}: '{_path_text(path[:-1])}' is not a section")
    node[last] = value


def _path_text(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def _validated(raw: dict, name: str | None = None) -> Config:
    """Check a raw mapping; errors carry no file name (the caller knows which source is at fault)."""
    raw = dict(raw)
    if name is not None:
        raw.setdefault("name", name)
    config = section(Config, raw, "")
    check_shapes(config)
    check_memory(config)
    if config.tune is not None:
        _check_tune(raw, config)
    return config


def _check_tune(raw: dict, config: Config) -> None:
    """Every key of tune.space must be a config key, and every value it can take must make a valid config:
    both ends of a range and each choice are tried now, so that no trial fails on a bad value later."""
    if config.data.val_fraction == 0:  # both metrics (MONITORS) are validation figures
        raise ConfigError(f"'tune.metric' is {config.tune.metric} but data.val_fraction is 0: a search needs a "
                          "validation split to judge the trials by")
    base = {k: v for k, v in raw.items() if k != "tune"}
    for key, dist in config.tune.space.items():
        label = f"tune.space {short(key)}"
        path = parse_key(key, label)
        if path[0] in ("tune", "name"):
            raise ConfigError(f"{label}: '{path[0]}' cannot be searched; expected a key of model, data or train")
        (kind, args), = dist.items()
        for value in args:
            trial = copy.deepcopy(base)
            assign(trial, path, value, label)
            try:
                _validated(trial)
            except ConfigError as exc:
                raise ConfigError(f"{label} = {short(value)}: {exc}") from None


def check_shapes(config: Config) -> None:
    """input_size must equal C*H*W, and every conv block must fit the maps the one before leaves."""
    model = config.model
    channels, height, width = model.input_shape
    if channels * height * width != model.input_size:
        raise ConfigError(f"'model.input_shape' is {model.input_shape} ({channels * height * width} values per row) "
                          f"but 'model.input_size' is {model.input_size}; they must agree (784 = 1 x 28 x 28)")
    # conv_shapes()[i] is what block i receives; the blocks before it were checked on earlier rounds
    for i, (block, (height, width, _)) in enumerate(zip(model.conv, config.conv_shapes())):
        before = "the input (model.input_shape)" if i == 0 else f"model.conv[{i - 1}]"
        padded_h, padded_w = height + 2 * block.pad, width + 2 * block.pad
        if block.kernel > padded_h or block.kernel > padded_w:
            raise ConfigError(f"model.conv[{i}]: a {block.kernel}x{block.kernel} kernel does not fit the "
                              f"{height}x{width} maps left by {before}" + (f" (padded to {padded_h}x{padded_w})"
                                                                            if block.pad else ""))
        if block.pad >= block.kernel:
            raise ConfigError(f"'model.conv[{i}].pad' is {block.pad}; expected less than the kernel size {block.kernel}")
        height, width = output_size(height, block.kernel, block.stride, block.pad), \
            output_size(width, block.kernel, block.stride, block.pad)
        if block.pool > 1:
            if block.pool > height or block.pool > width:
                raise ConfigError(f"model.conv[{i}]: a {block.pool}x{block.pool} pool does not fit the "
                                  f"{height}x{width} maps left by its convolution")


def config_from_dict(raw: dict, source: str = "<config>", name: str | None = None) -> Config:
    """Validate a raw mapping; errors are prefixed with `source` so the user knows which file is at fault."""
    try:
        return _validated(raw, name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = (),
                base: dict | None = None) -> Config:
    """Read a YAML config (or, when `path` is None, start from `base` or the built-in defaults) and apply
    `--set` overrides. An error names the `--set` that caused it, or else the file."""
    raw = parse_yaml(path) if path is not None else copy.deepcopy(base or {})
    # The run's default name is the file's, made plain (a config 'my exp.yaml' trains runs/my-exp/).
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("._-")[:100] if path is not None else ""
    name = name or "default"
    source = str(path) if path is not None else "the built-in defaults"
    steps = [copy.deepcopy(raw)]
    for assignment in overrides:
        apply_override(raw, assignment)
        steps.append(copy.deepcopy(raw))
    try:
        return _validated(raw, name)
    except ConfigError as exc:
        message = str(exc)
    # Blame the first source after which this very error appears: the file itself, or a --set.
    for blamed, partial in zip([source, *(f"--set {a}" for a in overrides)], steps):
        try:
            _validated(partial, name)
        except ConfigError as exc:
            if str(exc) == message:
                raise ConfigError(f"{blamed}: {message}") from None
    raise ConfigError(f"{f'--set {overrides[-1]}' if overrides else source}: {message}")


def dump_config(config: Config) -> str:
    """The config as YAML, without the optimizer and schedule keys its choices do not read, nor the tune
    section (a run is an ordinary fit, whatever search it came from)."""
    raw = config.to_dict()
    raw.pop("tune")
    for section_name, used in (("optimizer", OPTIMIZER_KEYS), ("schedule", SCHEDULE_KEYS)):
        part = raw["train"][section_name]
        raw["train"][section_name] = {k: v for k, v in part.items() if k == "name" or k in used[part["name"]]}
    return yaml.safe_dump(raw, sort_keys=False)


def learning_rate_warning(config: Config, overrides: list[str]) -> str | None:
    """A warning when --set switched the optimizer but left a learning rate outside its usual range."""
    keys = [a.partition("=")[0].strip() for a in overrides]
    if "train.optimizer.name" not in keys or "train.optimizer.lr" in keys:
        return None
    opt = config.train.optimizer
    low, high = TYPICAL_LR[opt.name]
    if low <= opt.lr <= high:
        return None
    return (f"warning: --set train.optimizer.name={opt.name} keeps train.optimizer.lr={opt.lr:g}, outside the "
            f"{low:g}..{high:g} that {opt.name} usually wants; add e.g. --set train.optimizer.lr="
            f"{math.sqrt(low * high):.2g}")


# --- refusing what cannot fit --------------------------------------------------------------------------

def estimate_bytes(config: Config) -> int:
    """Rough peak memory of training: weights, gradients and two optimizer slots, plus a batch's activations."""
    sizes = [config.dense_input_size(), *config.layer_sizes[1:]]
    itemsize = 4 if config.model.dtype == "float32" else 8
    weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    per_sample = sum(sizes) * 4  # outputs, masks, gradients, scratch
    for block, (h, w, c) in zip(config.model.conv, config.conv_shapes()):
        weights += (block.kernel * block.kernel * c + 1) * block.filters
        positions = output_size(h, block.kernel, block.stride, block.pad) * output_size(w, block.kernel, block.stride, block.pad)
        per_sample += positions * (block.kernel * block.kernel * c * 2 + block.filters * 6)  # col, dcol, maps
    return (weights * 4 + config.train.batch_size * per_sample) * itemsize


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(config: Config) -> None:
    need, have = estimate_bytes(config), available_memory()
    if need > have:
        raise ConfigError(f"model.hidden: this network needs about {need / 2**30:.1f} GiB to train "
                          f"(layer sizes {config.layer_sizes}, batch {config.train.batch_size}), "
                          f"more than the {have / 2**30:.1f} GiB available; use smaller layers")
