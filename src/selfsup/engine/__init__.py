"""Training on Lightning: the module every method runs in, checkpoints, the run folder."""
from selfsup.engine.build import build_method, resolve_config
from selfsup.engine.module import SSLModule
from selfsup.engine.train import resume, train

__all__ = ["build_method", "resolve_config", "SSLModule", "resume", "train"]
