"""Typed configs loaded from YAML recipes and ``key=value`` overrides."""
from selfsup.config.loading import (
    DEFAULT_RECIPE,
    ConfigError,
    check_keys,
    closest_keys_message,
    list_recipes,
    load_config,
    load_run_config,
)
from selfsup.config.schema import (
    AugmentConfig,
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)

__all__ = [
    "DEFAULT_RECIPE", "ConfigError", "check_keys", "closest_keys_message", "list_recipes",
    "load_config", "load_run_config", "AugmentConfig", "Config", "DataConfig", "EvalConfig",
    "ModelConfig", "OptimConfig", "RunConfig",
]
