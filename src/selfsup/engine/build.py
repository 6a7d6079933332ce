"""From a config to data, method and Lightning module; the trainer's config section."""
from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf

from selfsup.data import DataSplits, make_loader
from selfsup.engine.configure import SELFSUP_TRAINER_KEYS
from selfsup.methods import Method, MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder


def lightning_trainer_kwargs(cfg: DictConfig, pretrain_samples: int) -> dict:
    """``trainer.*`` for Lightning. A run shorter than 10 x ``log_every_n_steps`` logs more often
    (at least 10 points per curve; every step of a very short run)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in SELFSUP_TRAINER_KEYS}
    steps = planned_steps(cfg, pretrain_samples)
    kwargs["log_every_n_steps"] = max(1, min(int(kwargs["log_every_n_steps"]), steps // 10))
    kwargs.setdefault("enable_model_summary", False)
    return kwargs


def planned_steps(cfg: DictConfig, pretrain_samples: int) -> int:
    """Optimiser steps the trainer will take: ``max_steps`` if set, else epochs x full batches."""
    t = cfg.trainer
    world = int(t.devices) * int(t.get("num_nodes", 1) or 1) if isinstance(t.devices, int) and t.devices > 0 else 1
    per_epoch = max(1, pretrain_samples // max(1, int(cfg.data.batch_size) * world))
    by_epochs = per_epoch * int(t.max_epochs) if t.max_epochs not in (None, -1) else None
    if t.max_steps not in (None, -1):
        return int(t.max_steps) if by_epochs is None else min(int(t.max_steps), by_epochs)
    return by_epochs or per_epoch


def input_spec(splits: DataSplits) -> InputSpec:
    return InputSpec(splits.in_channels, splits.input_shape, splits.kind)


def build_method(cfg: DictConfig, splits: DataSplits) -> Method:
    """The method of ``cfg.method`` around a fresh encoder, initialised from ``cfg.seed``."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cls, params = resolve_method_params(OmegaConf.to_container(cfg.method))
    spec = input_spec(splits)
    encoder = build_encoder(cfg.model, spec, splits.mean, splits.std)
    return cls(params, encoder, MethodContext(spec, splits.num_classes, cfg.augment, splits.info))


class SplitsDataModule(L.LightningDataModule):
    """Loaders of the pre-training and validation splits, sharded by the trainer's rank."""

    def __init__(self, splits: DataSplits, cfg: DictConfig):
        super().__init__()
        self.splits, self.cfg = splits, cfg

    def _loader(self, dataset, shuffle: bool, drop_last: bool):
        trainer = self.trainer
        batch = min(int(self.cfg.data.batch_size), len(dataset) // max(1, trainer.world_size)) or 1
        return make_loader(dataset, batch, shuffle, int(self.cfg.seed), drop_last, self.cfg.data.num_workers,
                           trainer.global_rank, trainer.world_size)

    def train_dataloader(self):
        # contrastive losses want full batches: drop the ragged last one
        return self._loader(self.splits.pretrain, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return self._loader(self.splits.val, shuffle=False, drop_last=False)
