"""``selfsup train``: build everything from a config, fit with Lightning, export the encoder."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from selfsup.config.loading import load_run_config
from selfsup.data import build_data
from selfsup.engine.build import SplitsDataModule, build_method, input_spec, lightning_trainer_kwargs, resolve_config
from selfsup.engine.checkpoint import AtomicCheckpointIO, RunCheckpoints, load_checkpoint_file
from selfsup.engine.metrics_log import RunMetricsLogger
from selfsup.engine.module import SSLModule
from selfsup.engine.run_dir import RUN_DIR_ENV, checkpoint_path, new_run_dir, save_config, training_finished
from selfsup.models import ENCODER_FILE, export_encoder

log = logging.getLogger(__name__)
# the module's on_after_batch_transfer (views on the device) is meant to win over the datamodule's
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")


def is_rank_zero() -> bool:
    return rank_zero_only.rank == 0


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train a new run; returns its folder."""
    cfg = resolve_config(cfg)
    run_dir = new_run_dir(cfg)
    cfg.run.dir = str(run_dir)
    if checkpoint_path(run_dir).exists() and is_rank_zero():
        raise FileExistsError(f"{run_dir} already holds a run: continue it with `selfsup train --resume {run_dir}`, "
                              "or choose another run.dir")
    if is_rank_zero():
        save_config(cfg, run_dir)
    return fit(cfg, run_dir, resume=False, callbacks=callbacks)


def resume(run_dir: str | Path, overrides: Sequence[str] = (), callbacks: Sequence[L.Callback] = ()) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint (model, optimiser, schedule,
    loop and RNG state); ``overrides`` (key=value) change its saved config first."""
    from selfsup.config.loading import build_config, parse_overrides, read_yaml

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if overrides:
        cfg = build_config(read_yaml(run_dir / "config.yaml"), parse_overrides(overrides))
    cfg = resolve_config(cfg)
    cfg.run.dir = str(run_dir)
    if is_rank_zero():
        save_config(cfg, run_dir)
    return fit(cfg, run_dir, resume=True, callbacks=callbacks)


def fit(cfg: DictConfig, run_dir: Path, resume: bool, callbacks: Sequence[L.Callback]) -> Path:
    if resume and training_finished(run_dir):
        log.info("%s: training already finished", run_dir)
        return run_dir
    splits = build_data(cfg.data, int(cfg.seed))
    method = build_method(cfg, splits)
    module = SSLModule(cfg, method, splits.num_classes)
    ckpt = checkpoint_path(run_dir)
    resume_from = ckpt if resume and ckpt.exists() else None
    resume_step = load_checkpoint_file(ckpt)["global_step"] if resume_from else None
    trainer = L.Trainer(
        **lightning_trainer_kwargs(cfg),
        default_root_dir=str(run_dir),
        logger=RunMetricsLogger(run_dir, resume_step),
        callbacks=[RunCheckpoints(run_dir / "checkpoints", cfg.trainer.ckpt_every_n_steps), *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )
    os.environ[RUN_DIR_ENV] = str(run_dir)  # processes launched by DDP write into the same run
    try:
        trainer.fit(module, datamodule=SplitsDataModule(splits, cfg), ckpt_path=str(resume_from) if resume_from else None)
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if trainer.is_global_zero:
        export_encoder(method.encoder, cfg.model, input_spec(splits), run_dir / ENCODER_FILE)
    return run_dir
