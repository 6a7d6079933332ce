"""From a config to data, method and Lightning module; the trainer's config section."""
from __future__ import annotations

import inspect

import lightning as L
from omegaconf import DictConfig, OmegaConf

from selfsup.config.loading import ConfigError, closest_keys_message
from selfsup.data import DataSplits, make_loader
from selfsup.methods import Method, MethodContext, method_config_with_defaults, resolve_method_params
from selfsup.models import InputSpec, build_encoder

TRAINER_DEFAULTS = {
    "max_epochs": 10,
    "max_steps": -1,
    "accelerator": "auto",
    "devices": 1,
    "strategy": "auto",
    "precision": "32-true",
    "log_every_n_steps": 50,
    "enable_progress_bar": True,
    "ckpt_every_n_steps": None,  # selfsup's own: also checkpoint every n optimiser steps
}
SELFSUP_TRAINER_KEYS = {"ckpt_every_n_steps"}
MANAGED_TRAINER_KEYS = {"callbacks", "logger", "plugins", "default_root_dir", "enable_checkpointing",
                        "use_distributed_sampler", "self"}


def valid_trainer_keys() -> set[str]:
    return (set(inspect.signature(L.Trainer.__init__).parameters) - MANAGED_TRAINER_KEYS) | SELFSUP_TRAINER_KEYS


def resolve_config(cfg: DictConfig) -> DictConfig:
    """The fully resolved config: method and trainer sections validated and defaults filled."""
    valid = valid_trainer_keys()
    for key in cfg.trainer:
        if key not in valid:
            raise ConfigError(closest_keys_message(f"trainer.{key}", [f"trainer.{k}" for k in valid]))
    out = cfg.copy()
    out.trainer = {**TRAINER_DEFAULTS, **OmegaConf.to_container(cfg.trainer)}
    out.method = method_config_with_defaults(OmegaConf.to_container(cfg.method))
    return out


def lightning_trainer_kwargs(cfg: DictConfig) -> dict:
    return {k: v for k, v in OmegaConf.to_container(cfg.trainer).items() if k not in SELFSUP_TRAINER_KEYS}


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
        return make_loader(dataset, batch, shuffle, int(self.cfg.seed), drop_last, int(self.cfg.data.num_workers),
                           trainer.global_rank, trainer.world_size)

    def train_dataloader(self):
        # contrastive losses want full batches: drop the ragged last one
        return self._loader(self.splits.pretrain, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return self._loader(self.splits.val, shuffle=False, drop_last=False)
