"""Run configuration: typed groups, YAML files and presets, overrides, and the reference repos' flat keys."""

from dbps.config.loader import config_from_dict, load_config, preset_names, read_yaml, resolve_config_path, save_config
from dbps.config.schema import (
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    GenerateConfig,
    LogConfig,
    ModelConfig,
    PatchConfig,
    SelectionConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "GenerateConfig",
    "LogConfig",
    "ModelConfig",
    "PatchConfig",
    "SelectionConfig",
    "TaskConfig",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "preset_names",
    "read_yaml",
    "resolve_config_path",
    "save_config",
]
