"""Experiment loggers through Lightning (``run.loggers``): csv (metrics.csv, what report.md
plots), tensorboard, wandb (offline unless ``WANDB_MODE`` says otherwise), mlflow (a local
``file:`` store in the run folder unless ``MLFLOW_TRACKING_URI`` is set). The last three are
optional extras: ``pip install 'selfsup[tensorboard]'`` (``[wandb]``, ``[mlflow]``)."""
from __future__ import annotations

import os
from typing import Optional

from lightning.pytorch.loggers import Logger

from selfsup.config.loading import ConfigError
from selfsup.engine.metrics_log import RunMetricsLogger

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
EXTRA_PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_loggers(names) -> list[str]:
    names = list(names)
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"unknown logger {name!r} in run.loggers; valid: {', '.join(LOGGERS)}")
    return names


def require(name: str) -> None:
    import importlib.util

    package = EXTRA_PACKAGE[name]
    if importlib.util.find_spec(package) is None:
        raise ImportError(f"run.loggers={name} needs {package}: `pip install 'selfsup[{name}]'`")


def build_loggers(run, resume_step: Optional[int]) -> list[Logger]:
    """The loggers of ``run.loggers`` writing into the run folder."""
    out: list[Logger] = []
    name = f"{run.cfg.recipe}"
    for kind in check_loggers(run.cfg.run.loggers):
        if kind == "csv":
            out.append(RunMetricsLogger(run.dir, resume_step))
            continue
        require(kind)
        if kind == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(str(run.dir), name="tensorboard", version=""))
        elif kind == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            os.environ.setdefault("WANDB_MODE", "offline")
            out.append(WandbLogger(name=name, save_dir=str(run.dir), id=run.dir.name.replace("/", "-"),
                                   resume="allow"))
        elif kind == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (run.dir / "mlruns").resolve().as_uri()
            out.append(MLFlowLogger(experiment_name=name, tracking_uri=uri))
    return out
