"""Batch loading: a seeded per-epoch shuffle, sharded across processes, fetched a batch at a time."""
from __future__ import annotations

import math
import os

import torch
from torch.utils.data import DataLoader, Sampler

from selfsup.data.base import IndexedDataset

MAX_AUTO_WORKERS = 8


class EpochShuffleSampler(Sampler[int]):
    """Indices of this process's shard, in an order that depends only on (seed, epoch).

    The trainer calls ``set_epoch`` at each epoch start, so a resumed run sees the same order
    as an uninterrupted one. With ``world_size`` processes the (padded) permutation is dealt
    out round-robin, each process getting ceil(N / world_size) indices."""

    def __init__(self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0  # skip this many of this shard's indices (a resumed epoch)

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
        return iter(order[self.rank :: self.world_size].tolist()[self.start:])


class ResumableLoader(DataLoader):
    """A DataLoader that Lightning checkpoints mid-epoch: ``state_dict`` records the epoch and
    the batches already handed out, ``load_state_dict`` makes the next pass over that epoch
    start after them, so a run resumed from a mid-epoch checkpoint sees exactly the batches an
    uninterrupted one would (Lightning saves and restores stateful loaders with the loop)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.taken, self.resume_at = 0, None

    def __iter__(self):
        skip = 0
        if self.resume_at is not None and self.resume_at["epoch"] == self.sampler.epoch:
            skip = int(self.resume_at["batches"])
        self.resume_at = None
        self.sampler.start = skip * int(self.batch_size)
        self.taken = skip
        try:
            for batch in super().__iter__():
                self.taken += 1
                yield batch
        finally:
            self.sampler.start = 0

    def state_dict(self) -> dict:
        return {"epoch": int(self.sampler.epoch), "batches": int(self.taken)}

    def load_state_dict(self, state: dict) -> None:
        self.resume_at = dict(state)


def keep_batch(batch):
    """The dataset's ``__getitems__`` already returns a stacked ``(inputs, labels)`` batch."""
    return batch


def auto_num_workers(dataset: IndexedDataset, world_size: int = 1) -> int:
    """``data.num_workers`` unset: for datasets decoded from files, the usable cores minus one
    (the main process), at most 8, shared among the processes of this machine
    (``$LOCAL_WORLD_SIZE``, else ``world_size``); 0 for data held in memory, where workers
    only add copies."""
    if not dataset.reads_files:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or world_size)
    return max(0, min(MAX_AUTO_WORKERS, (cores - 1) // max(1, local)))


def make_loader(
    dataset: IndexedDataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Batches of ``dataset`` in the order of an :class:`EpochShuffleSampler`; each batch is
    fetched by one ``__getitems__`` call, in a worker process when ``num_workers`` > 0
    (None: :func:`auto_num_workers`)."""
    if num_workers is None:
        num_workers = auto_num_workers(dataset, world_size)
    sampler = EpochShuffleSampler(len(dataset), seed, shuffle, rank, world_size)
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=keep_batch,
        persistent_workers=num_workers > 0,
    )
