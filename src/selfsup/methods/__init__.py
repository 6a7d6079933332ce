"""Methods: one file each. Importing this package registers them all."""
from selfsup.methods import simclr as _simclr  # noqa: F401
from selfsup.methods import simper as _simper  # noqa: F401  (issue 5)
from selfsup.methods import contextssl as _contextssl  # noqa: F401  (issue 6: contextssl, simclr-pairs)
from selfsup.methods import barlow_twins, byol, moco, simsiam, supcon, supcon_moco, vicreg  # noqa: F401  (issue 3)
from selfsup.methods import exemplar, jigsaw, relative_patch, rotnet  # noqa: F401  (issue 4 pretext tasks)
from selfsup.methods.base import (
    METHODS,
    Method,
    MethodContext,
    Params,
    method_config_with_defaults,
    register_method,
    resolve_method_params,
)

__all__ = ["METHODS", "Method", "MethodContext", "Params", "method_config_with_defaults",
           "register_method", "resolve_method_params"]
