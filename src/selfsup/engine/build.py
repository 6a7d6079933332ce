"""From a config to data, method and Lightning module; the trainer's config section."""
from __future__ import annotations

import lightning as L
from omegaconf import DictConfig, OmegaConf

from selfsup.data import DataSplits, make_loader
from selfsup.config.loading import ConfigError
from selfsup.engine.configure import SELFSUP_TRAINER_KEYS
from selfsup.engine.precision import uses_cuda
from selfsup.methods import METHODS, Method, MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder
from selfsup.models.init_weights import load_init_weights


def lightning_trainer_kwargs(cfg: DictConfig, pretrain_samples: int) -> dict:
    """``trainer.*`` for Lightning (a ``min_train_steps`` longer than ``max_epochs`` becomes
    ``max_steps``, with the epochs to hold it). A run shorter than 10 x ``log_every_n_steps`` logs more often
    (at least 10 points per curve; every step of a very short run)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in SELFSUP_TRAINER_KEYS}
    steps = planned_steps(cfg, pretrain_samples)
    if kwargs.get("max_steps") in (None, -1) and kwargs.get("max_epochs") not in (None, -1) \
            and steps > int(kwargs["max_epochs"]) * steps_per_epoch(cfg, pretrain_samples):  # min_train_steps
        kwargs["max_steps"], kwargs["max_epochs"] = steps, -(-steps // steps_per_epoch(cfg, pretrain_samples))
    kwargs["log_every_n_steps"] = max(1, min(int(kwargs["log_every_n_steps"]), steps // 10))
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("sync_batchnorm", sync_batchnorm(cfg))
    return kwargs


def planned_world_size(cfg: DictConfig) -> int:
    """Processes in all (``devices`` x ``num_nodes``) as far as the config says; 1 when ``auto``."""
    t = cfg.trainer
    return int(t.devices) * int(t.get("num_nodes", 1) or 1) if isinstance(t.devices, int) and t.devices > 0 else 1


def sync_batchnorm(cfg: DictConfig) -> bool:
    """``model.sync_batchnorm``; None: on for a method with ``global_batchnorm`` when several CUDA
    processes train (PyTorch's SyncBatchNorm has no CPU kernel, so never on the CPU)."""
    on_cuda = uses_cuda(str(cfg.trainer.accelerator))
    value = cfg.model.get("sync_batchnorm")
    if value is None:
        return on_cuda and planned_world_size(cfg) > 1 and METHODS.get(cfg.method.name).global_batchnorm
    if value and not on_cuda:
        raise ConfigError("model.sync_batchnorm=true needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); "
                          "leave it unset (auto) or false on the CPU")
    return bool(value)


def steps_per_epoch(cfg: DictConfig, pretrain_samples: int) -> int:
    return max(1, pretrain_samples // max(1, int(cfg.data.batch_size) * planned_world_size(cfg)))


def planned_steps(cfg: DictConfig, pretrain_samples: int) -> int:
    """Optimiser steps the trainer will take: ``max_steps`` if set (capped by the epochs), else
    epochs x full batches, raised to ``trainer.min_train_steps`` when that is more (small data)."""
    t = cfg.trainer
    per_epoch = steps_per_epoch(cfg, pretrain_samples)
    by_epochs = per_epoch * int(t.max_epochs) if t.max_epochs not in (None, -1) else None
    if t.max_steps not in (None, -1):
        return int(t.max_steps) if by_epochs is None else min(int(t.max_steps), by_epochs)
    return max(by_epochs or per_epoch, int(t.get("min_train_steps") or 0))


def input_spec(splits: DataSplits) -> InputSpec:
    return InputSpec(splits.in_channels, splits.input_shape, splits.kind)


def build_method(cfg: DictConfig, splits: DataSplits, init_weights: bool = True) -> Method:
    """The method of ``cfg.method`` around a fresh encoder, initialised from ``cfg.seed``, then
    loaded from ``cfg.model.init`` when set and ``init_weights`` (evaluation passes False: its
    random_init baseline is the seeded random init)."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    cls, params = resolve_method_params(OmegaConf.to_container(cfg.method))
    spec = input_spec(splits)
    encoder = build_encoder(cfg.model, spec, splits.mean, splits.std)
    if init_weights and cfg.model.get("init"):
        load_init_weights(encoder, cfg.model.init)
    return cls(params, encoder, MethodContext(spec, splits.num_classes, cfg.augment, splits.info))


def process_batch_size(batch_size: int, samples: int, world_size: int) -> int:
    """The batch one process loads: ``data.batch_size``, or each process's share of a split
    smaller than that (at least 1)."""
    return min(batch_size, samples // max(1, world_size)) or 1


class SplitsDataModule(L.LightningDataModule):
    """Loaders of the pre-training and validation splits, sharded by the trainer's rank."""

    def __init__(self, splits: DataSplits, cfg: DictConfig):
        super().__init__()
        self.splits, self.cfg = splits, cfg

    def _loader(self, dataset, shuffle: bool, drop_last: bool):
        trainer = self.trainer
        batch = process_batch_size(int(self.cfg.data.batch_size), len(dataset), trainer.world_size)
        return make_loader(dataset, batch, shuffle, int(self.cfg.seed), drop_last, self.cfg.data.num_workers,
                           trainer.global_rank, trainer.world_size)

    def train_dataloader(self):
        # contrastive losses want full batches: drop the ragged last one
        return self._loader(self.splits.pretrain, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return self._loader(self.splits.val, shuffle=False, drop_last=False)
