"""Checkpoints: written atomically (temp file + rename), read without unpickling code."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

LAST = "last.ckpt"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over ``path``: a
    reader sees the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint as a dict, read with ``weights_only=True``; a corrupt file is an error
    naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several unrelated types for damaged files
        raise ValueError(f"checkpoint {path} is corrupt or not a selfsup checkpoint ({err}); "
                         "delete it to start over, or restore it from a copy") from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic writes and weights-only reads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint_file(path, map_location or "cpu")


class RunCheckpoints(L.Callback):
    """Write ``checkpoints/last.ckpt`` at every epoch end and, with ``every_n_steps``, every
    n optimiser steps; the file always holds the newest complete state."""

    def __init__(self, folder: Path, every_n_steps: int | None = None):
        self.path = Path(folder) / LAST
        self.every_n_steps = every_n_steps

    def save(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:  # metrics up to this state reach the disk with it
            logger.save()
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimiser, schedule, loops

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)
