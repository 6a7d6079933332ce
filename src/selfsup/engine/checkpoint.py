"""Checkpoints: written atomically (temp file + rename), read without unpickling code."""
from __future__ import annotations

import errno
import io
import json
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
    buffer = io.BytesIO()  # serialised in memory first: a full disk is then an OSError that says the size
    torch.save(obj, buffer)  # needed, not torch's "unexpected pos" from deep inside its zip writer
    data = buffer.getbuffer()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(err.errno, f"{err.strerror or os.strerror(err.errno)} (writing it needs "
                                     f"{len(data) / 1e6:.1f} MB free)", str(path)) from err
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
    """Lightning's checkpoint I/O with atomic writes and weights-only reads. ``preloaded`` is a
    checkpoint already read (and so checked) by the caller: Lightning gets it without a second read."""

    def __init__(self, preloaded: dict | None = None):
        super().__init__()
        self.preloaded = preloaded

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if self.preloaded is not None:
            checkpoint, self.preloaded = self.preloaded, None
            return checkpoint
        return load_checkpoint_file(path, map_location or "cpu")


class RunCheckpoints(L.Callback):
    """Write ``checkpoints/last.ckpt`` at every epoch end and, with ``every_n_steps``, every
    n optimiser steps; the file always holds the newest complete state whose weights are all
    finite."""

    def __init__(self, folder: Path, every_n_steps: int | None = None):
        self.path = Path(folder) / LAST
        self.every_n_steps = every_n_steps
        self.saved_step = -1

    def save(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:  # metrics up to this state reach the disk with it
            logger.save()
        if not all(bool(torch.isfinite(p).all()) for p in trainer.lightning_module.parameters()):
            return  # a diverged state never replaces the last finite one (the NaN-loss error points at it)
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimiser, schedule, loops
        self.saved_step = trainer.global_step
        if trainer.is_global_zero:  # what the checkpoint holds, readable without loading it
            info = {"global_step": int(trainer.global_step), "epoch": int(trainer.current_epoch)}
            atomic_write_text(self.path.with_suffix(".json"), json.dumps(info) + "\n")

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        # the state after step n, saved before step n + 1 starts: by then step n's metrics are
        # logged, so metrics.csv on disk matches the checkpoint
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0 and step != self.saved_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)
