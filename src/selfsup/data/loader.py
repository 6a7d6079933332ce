"""Batch loading: a seeded per-epoch shuffle, sharded across processes, fetched a batch at a time."""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler

from selfsup.data.base import IndexedDataset


class EpochShuffleSampler(Sampler[int]):
    """Indices of this process's shard, in an order that depends only on (seed, epoch).

    The trainer calls ``set_epoch`` at each epoch start, so a resumed run sees the same order
    as an uninterrupted one. With ``world_size`` processes the (padded) permutation is dealt
    out round-robin, each process getting ceil(N / world_size) indices."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g)
        else:
            order = torch.arange(self.size)
        padded = len(self) * self.world_size
        if padded > self.size:
            order = torch.cat([order, order[: padded - self.size]])
        return iter(order[self.rank :: self.world_size].tolist())


def keep_batch(batch):
    """The dataset's ``__getitems__`` already returns a stacked ``(inputs, labels)`` batch."""
    return batch


def make_loader(
    dataset: IndexedDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    sampler = EpochShuffleSampler(len(dataset), seed, shuffle, rank, world_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=keep_batch,
        persistent_workers=num_workers > 0,
    )
