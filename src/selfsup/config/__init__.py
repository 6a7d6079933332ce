"""Typed configs loaded from YAML recipes and ``key=value`` overrides."""
from selfsup.config.loading import (
    DEFAULT_RECIPE,
    ConfigError,
    check_keys,
    closest_keys_message,
    list_recipes,
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
    "AugmentConfig", "Config", "DataConfig", "EvalConfig",
    "ModelConfig", "OptimConfig", "RunConfig",
]
