"""Methods: one file each, listed by name in ``selfsup.methods.registry``."""
from selfsup.methods.base import Method, MethodContext, Params, method_config_with_defaults, resolve_method_params
from selfsup.methods.registry import METHODS

__all__ = ["METHODS", "Method", "MethodContext", "Params", "method_config_with_defaults", "resolve_method_params"]
