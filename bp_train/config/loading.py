"""Reading a config: YAML in (safely), `--set` overrides applied, every value checked, errors blamed.

`load_config(path, overrides)` reads the file, applies each `--set key=value` in turn and checks the
result against the schema (schema.py). An error names the source at fault: the file, or the first
`--set` after which it appears. `dump_config` writes the resolved config a run saves beside its model.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path

import yaml

from ..errors import ConfigError, unreadable
from ..nn.optimizers import OPTIMIZERS
from . import safeyaml
from .build import check_shapes
from .safeyaml import short
from .schema import OPTIMIZER_KEYS, SCHEDULE_KEYS, Config, section


def parse_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML file safely into a dict, with file and line in every error."""
    path = Path(path)
    if problem := unreadable(path, "config file"):
        raise ConfigError(problem)
    try:
        source = path.read_text(encoding="utf-8-sig")
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
        raise ConfigError(
            f"{path}: expected a mapping with the sections model, data, train; got a {type(raw).__name__}"
        )
    return raw


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


def parse_key(dotted: str, label: str) -> list[str | int]:
    """'model.hidden[0].size' -> ['model', 'hidden', 0, 'size']. `label` starts any error ('--set ...')."""
    path: list[str | int] = []
    for part in dotted.strip().split("."):
        match = _KEY_PART.match(part)
        if match is None:
            raise ConfigError(
                f"{label}: the key {short(dotted)} is not a dotted path like train.epochs or model.hidden[0].size"
            )
        path.append(match.group(1))
        indexes = re.findall(r"\d+", match.group(2))
        if any(len(i) > 6 for i in indexes):  # no list in a config has a million items
            raise ConfigError(f"{label}: the index in {short(dotted)} is far beyond any list a config holds")
        path.extend(int(i) for i in indexes)
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
        where = _path_text(path[: depth + 1])
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError(
                    f"{label}: '{_path_text(path[:depth])}' has {size} item(s); index {step} is out of range"
                )
            child = node[step]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"{label}: '{_path_text(path[:depth])}' is not a section")
            child = node.get(step)
            if child is None:
                child = node[step] = _default_at(path[: depth + 1]) if isinstance(path[depth + 1], int) else {}
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
    if config.tune is not None:
        _check_tune(raw, config)
    return config


def _check_tune(raw: dict, config: Config) -> None:
    """Every key of tune.space must be a config key, and every value it can take must make a valid config:
    both ends of a range and each choice are tried now, so that no trial fails on a bad value later."""
    if config.data.val_fraction == 0:  # both metrics (MONITORS) are validation figures
        raise ConfigError(
            f"'tune.metric' is {config.tune.metric} but data.val_fraction is 0: a search needs a "
            "validation split to judge the trials by"
        )
    base = {k: v for k, v in raw.items() if k != "tune"}
    seen = {}
    for key, dist in config.tune.space.items():
        label = f"tune.space {short(key)}"
        path = parse_key(key, label)
        if path[0] in ("tune", "name"):
            raise ConfigError(f"{label}: '{path[0]}' cannot be searched; expected a key of model, data or train")
        if tuple(path) in seen:  # 'train.epochs' and 'train.epochs ' are one key: one would go unused
            raise ConfigError(
                f"{label}: names the same config key as tune.space {short(seen[tuple(path)])}; give each key once"
            )
        seen[tuple(path)] = key
        ((kind, args),) = dist.items()
        for value in args:
            trial = copy.deepcopy(base)
            assign(trial, path, value, label)
            try:
                checked = _validated(trial)
            except ConfigError as exc:
                raise ConfigError(f"{label} = {short(value)}: {exc}") from None
            rows = checked.data.train_rows
            if rows is not None and round(rows * checked.data.val_fraction) == 0:
                raise ConfigError(
                    f"{label} = {short(value)}: data.train_rows {rows} x data.val_fraction "
                    f"{checked.data.val_fraction:g} leaves no validation row to judge a trial by"
                )


def config_from_dict(raw: dict, source: str = "<config>", name: str | None = None) -> Config:
    """Validate a raw mapping; errors are prefixed with `source` so the user knows which file is at fault."""
    try:
        return _validated(raw, name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = (), base: dict | None = None) -> Config:
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
    for blamed, partial in zip([source, *(f"--set {cut(a)}" for a in overrides)], steps):
        try:
            _validated(partial, name)
        except ConfigError as exc:
            if str(exc) == message:
                raise ConfigError(f"{blamed}: {message}") from None
    raise ConfigError(f"{f'--set {cut(overrides[-1])}' if overrides else source}: {message}")


def cut(text: str, limit: int = 80) -> str:
    """A --set as the user wrote it, cut to one readable line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    low, high = OPTIMIZERS[opt.name].typical_lr
    if low <= opt.lr <= high:
        return None
    return (
        f"warning: --set train.optimizer.name={opt.name} keeps train.optimizer.lr={opt.lr:g}, outside the "
        f"{low:g}..{high:g} that {opt.name} usually wants; add e.g. --set train.optimizer.lr="
        f"{math.sqrt(low * high):.2g}"
    )
