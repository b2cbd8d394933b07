"""The YAML experiment config: its schema (schema.py), reading it with `--set` overrides (loading.py), and
turning it into the lesson's network (build.py)."""

from .build import build_network, learning_rate_at, network_arguments, optimizer_for
from .loading import (
    apply_override,
    assign,
    config_from_dict,
    dump_config,
    learning_rate_warning,
    load_config,
    parse_key,
)
from .schema import Config, DataConfig, ModelConfig, OptimizerConfig, ScheduleConfig, TrainConfig, TuneConfig, run_name

__all__ = [
    "Config",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TuneConfig",
    "apply_override",
    "assign",
    "build_network",
    "config_from_dict",
    "dump_config",
    "learning_rate_warning",
    "learning_rate_at",
    "load_config",
    "network_arguments",
    "optimizer_for",
    "parse_key",
    "run_name",
]
