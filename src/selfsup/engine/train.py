"""``selfsup train``: build everything from a config, fit with Lightning, export the encoder."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from selfsup.config.loading import ConfigError
from selfsup.engine.budget import TimeBudget, budget_seconds
from selfsup.engine.build import (SplitsDataModule, build_method, input_spec, lightning_trainer_kwargs,
                                  process_batch_size)
from selfsup.engine.checkpoint import AtomicCheckpointIO, RunCheckpoints, load_checkpoint_file
from selfsup.engine.configure import check_resume_overrides, resume_config
from selfsup.engine.console import StderrProgressBar, quiet_lightning
from selfsup.engine.loggers import build_loggers
from selfsup.engine.module import SSLModule
from selfsup.engine.run import RUN_DIR_ENV, Run, new_run_dir, process_rank, write_json
from selfsup.eval.label_gate import online_probe_gap
from selfsup.models import export_encoder

log = logging.getLogger(__name__)


def is_rank_zero() -> bool:
    return process_rank() == 0


def train(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> Run:
    """Train a new run from a resolved config (:func:`selfsup.engine.configure.compose_config`);
    returns the run. A failure before the first checkpoint leaves no run folder behind."""
    run = Run(new_run_dir(cfg), cfg)
    cfg.run.dir = str(run.dir)
    if is_rank_zero():
        log.info("run folder: %s", run.dir)
    with run.writing(new=True):  # a folder another process writes into is refused first
        if run.checkpoint_path.exists() and is_rank_zero():
            raise FileExistsError(f"{run.dir} already holds a run: continue it with `selfsup train --resume {run.dir}`, "
                                  "or choose another run.dir")
        module = prepare(run, callbacks)  # data, method and trainer built (and validated) before anything is written
        if is_rank_zero():
            run.save_config()
        fit(run, *module, resume=False)
    return run


def resume(run: Run | str | Path, overrides: Sequence[str] = (), callbacks: Sequence[L.Callback] = ()) -> Run:
    """Continue ``run`` from its last checkpoint (model, optimiser, schedule, loop and RNG state).
    ``overrides`` may change what a resume can change (length, devices, logging, eval.*,
    optim.lr); they are validated before anything is written. A finished run trains on when the
    overrides make it longer (the schedule is planned again over the new length)."""
    run = run if isinstance(run, Run) else Run.open(run)
    if is_rank_zero():
        log.info("run folder: %s", run.dir)
    cfg = resume_config(run, overrides)  # unknown keys and wrong types first, with their closest names
    check_resume_overrides(run, overrides)
    extended = Run(run.dir, cfg)
    if run.finished and not longer_than_trained(extended):
        log.info("%s: training already finished (%s); to train longer raise trainer.max_epochs or trainer.max_steps",
                 run.dir, trained_length(run))
        return run
    # read (so checked) once, before config.yaml records the resume; Lightning then restores from it
    checkpoint = load_checkpoint_file(run.checkpoint_path) if run.checkpoint_path.exists() else None
    with extended.writing():
        module = prepare(extended, callbacks, checkpoint)
        if is_rank_zero() and overrides:
            history = list(cfg.run.history) + [f"{time.strftime('%Y-%m-%d %H:%M:%S')} resume {' '.join(overrides)}"]
            cfg.run.history = history
            extended.save_config()
        fit(extended, *module, resume=True)
    return extended


def trained_length(run: Run) -> str:
    info = run.training()
    return f"{info.get('epochs', '?')} epochs, {info.get('steps', '?')} steps"


def longer_than_trained(run: Run) -> bool:
    """Whether ``run.cfg``'s length exceeds what training.json says was trained."""
    info, t = run.training(), run.cfg.trainer
    steps, epochs = int(info.get("steps", 0)), int(info.get("epochs", 0))
    if t.max_steps is not None and int(t.max_steps) > 0:
        return int(t.max_steps) > steps and (t.max_epochs in (None, -1) or int(t.max_epochs) > epochs)
    return t.max_epochs not in (None, -1) and int(t.max_epochs) > epochs


class TrainingRecord(L.Callback):
    """Writes training.json (epochs, steps, batch, precision, device, wall time) at the start, at
    every checkpoint and at the end; wall time adds up over resumes. ``finished`` turns true when
    fit ends; the run counts as finished once its encoder is exported too (:attr:`Run.finished`)."""

    def __init__(self, run: Run):
        self.run = run
        self.before = float(run.training().get("wall_time_s", 0.0))
        self.start = time.perf_counter()

    def record(self, trainer: L.Trainer, finished: bool) -> None:
        if not trainer.is_global_zero:
            return
        splits, cfg = self.run.splits(), self.run.cfg
        batch = process_batch_size(int(cfg.data.batch_size), len(splits.pretrain), trainer.world_size)
        batches = trainer.num_training_batches  # per epoch and process; inf before fit has built the loader
        steps, accumulate = int(trainer.global_step), int(trainer.accumulate_grad_batches)
        epochs = steps * accumulate // batches if 0 < batches < float("inf") else 0
        write_json(self.run.training_path, {
            "method": cfg.method.name, "encoder": cfg.model.encoder, "dataset": cfg.data.name,
            "pretrain_samples": len(splits.pretrain), "val_samples": len(splits.val), "test_samples": len(splits.test),
            "epochs": epochs, "steps": steps, "batch_size": batch,  # epochs: complete passes, batch: the one loaded
            "world_size": int(trainer.world_size), "samples_seen": steps * accumulate * batch * trainer.world_size,
            "precision": str(trainer.precision), "device": device_name(trainer),
            "wall_time_s": round(self.before + time.perf_counter() - self.start, 2), "finished": finished,
            "planned_steps": trainer.lightning_module.planned_total_steps,  # a trainer.max_time plan, or None
            "torch": torch.__version__, "lightning": L.__version__,
        })

    def on_train_start(self, trainer, pl_module) -> None:
        self.record(trainer, finished=False)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.record(trainer, finished=False)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record(trainer, finished=True)


def device_name(trainer: L.Trainer) -> str:
    device = trainer.strategy.root_device
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def prepare(run: Run, callbacks: Sequence[L.Callback], checkpoint: dict | None = None) -> tuple[L.Trainer, SSLModule]:
    """The trainer and module of ``run``: data, method and every trainer argument are built (so
    validated) here, before the run folder gets anything."""
    cfg = run.cfg
    quiet_lightning()
    splits = run.splits()
    method = build_method(cfg, splits)
    # the online probe needs labelled pre-training samples of 2+ classes (eval.json: skipped.online_probe)
    module = SSLModule(cfg, method, splits.num_classes if online_probe_gap(splits.pretrain.labels) is None else 0)
    try:
        trainer = make_trainer(run, callbacks, len(splits.pretrain), checkpoint)
    except MisconfigurationException as err:  # devices, accelerator, strategy this machine cannot give
        raise ConfigError(f"the trainer.* settings cannot run here: {err} (see `selfsup config` for the keys)") from None
    return trainer, module


def make_trainer(run: Run, callbacks: Sequence[L.Callback], pretrain_samples: int,
                 checkpoint: dict | None = None) -> L.Trainer:
    cfg = run.cfg
    budget = budget_seconds(cfg.trainer.get("max_time"))
    return L.Trainer(
        **lightning_trainer_kwargs(cfg, pretrain_samples),
        default_root_dir=str(run.dir),
        logger=build_loggers(run, run.checkpoint_step()),
        callbacks=[RunCheckpoints(run.dir / "checkpoints", cfg.trainer.ckpt_every_n_steps), TrainingRecord(run),
                   *([StderrProgressBar()] if cfg.trainer.enable_progress_bar else []),
                   *([TimeBudget(budget)] if budget else []), *callbacks],
        plugins=[AtomicCheckpointIO(preloaded=checkpoint)],
        enable_checkpointing=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )


def fit(run: Run, trainer: L.Trainer, module: SSLModule, resume: bool) -> None:
    resume_from = run.checkpoint_path if resume and run.checkpoint_path.exists() else None
    os.environ[RUN_DIR_ENV] = str(run.dir)  # processes launched by DDP write into the same run
    try:
        trainer.fit(module, datamodule=SplitsDataModule(run.splits(), run.cfg),
                    ckpt_path=str(resume_from) if resume_from else None)
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if trainer.is_global_zero:
        export_encoder(module.method.encoder, run.cfg.model, input_spec(run.splits()), run.encoder_path)
