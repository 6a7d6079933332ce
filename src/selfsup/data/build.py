"""From a ``data`` config to train / val / test splits with normalisation statistics."""
from __future__ import annotations

import logging

import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import UNLABELLED, DataSplits, IndexedDataset
from selfsup.data.registry import DATASETS
from selfsup.data.splits import keep_labelled_fraction, split_off, stratified_indices

log = logging.getLogger(__name__)


def channel_stats(dataset: IndexedDataset, kind: str, seed: int) -> tuple[tuple, tuple]:
    """Per-channel mean and std of (a seeded sample of) the inputs; images on the 0..1 scale."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=g)[:dataset.stats_samples]
    x = dataset.load(index).float()
    if kind == "image":
        x = x / 255.0
    channel_dim = -1 if kind in ("signal", "tabular") else -3  # table rows: one statistic per column
    x = x.movedim(channel_dim, 0).reshape(x.shape[channel_dim], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-6).tolist())


def check_data_config(cfg: DataConfig) -> None:
    """Ranges every dataset relies on, checked before any file is read."""
    if cfg.image_size is not None and cfg.image_size <= 0:
        raise ValueError(f"data.image_size must be a positive number of pixels (or unset for the dataset's "
                         f"default), got {cfg.image_size}")
    if cfg.num_workers is not None and cfg.num_workers < 0:
        raise ValueError(f"data.num_workers must be >= 0 (0 = load in the main process) or unset for the "
                         f"machine's cores, got {cfg.num_workers}")


def build_data(cfg: DataConfig, seed: int) -> DataSplits:
    """The dataset named by ``cfg.name``, with ``data.limit`` (stratified), the validation split
    (``data.val_fraction``) and ``data.labelled_fraction`` applied, all seeded by ``seed``.

    The method pre-trains on every training sample; the validation part only has its labels
    hidden, so the online probe never trains on them."""
    check_data_config(cfg)
    raw = DATASETS.get(cfg.name).build(cfg, seed)
    train = raw.train
    if cfg.limit is not None:
        if cfg.limit <= 0:
            raise ValueError(f"data.limit must be positive, got {cfg.limit}")
        train = train.take(stratified_indices(train.labels, cfg.limit, seed))
    keep, held = split_off(train.labels, cfg.val_fraction, seed + 1)
    pretrain_labels = train.labels.clone()
    if cfg.labelled_fraction is not None:
        pretrain_labels[keep] = keep_labelled_fraction(train.labels[keep], cfg.labelled_fraction, seed + 2)
        log.info("data.labelled_fraction=%s: %d of %d training samples keep their label",
                 cfg.labelled_fraction, int((pretrain_labels >= 0).sum()), len(train))
    pretrain_labels[held] = UNLABELLED
    mean, std = channel_stats(train, raw.kind, seed)
    return DataSplits(
        name=cfg.name, train=train, pretrain=train.with_labels(pretrain_labels), val=train.take(held), test=raw.test, num_classes=raw.num_classes, kind=raw.kind,
        mean=mean, std=std, class_names=raw.class_names, info=raw.info,
    )
