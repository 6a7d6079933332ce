"""What an evaluation needs: the run's config, data, encoders, and cached frozen features."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig
from torch import nn

from selfsup.data.base import DataSplits, IndexedDataset
from selfsup.eval.features import autocast_dtype, extract_features, raw_pixels
from selfsup.models.encoders import Encoder


@dataclass
class FeatureSet:
    """Frozen features of the training bank and of the test set, with labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def labelled_test(self) -> "FeatureSet":
        """The same bank, the test set without its unlabelled (-1) samples: what class probes score."""
        keep = self.test_y >= 0
        return FeatureSet(self.train_x, self.train_y, self.test_x[keep], self.test_y[keep])


@dataclass
class EvalContext:
    """Shared by every evaluation of one run. ``bank`` is the training split (capped by
    ``eval.limit``), ``test`` the test split (capped likewise); the validation split is in
    ``splits.val`` for any hyper-parameter choice. Encoders are in eval mode."""

    cfg: DictConfig
    run_dir: Path
    splits: DataSplits
    bank: IndexedDataset
    test: IndexedDataset
    encoders: dict[str, Encoder]  # "trained", and "random_init" when baselines are on
    device: torch.device
    options: dict = field(default_factory=dict)  # evaluation options from the CLI
    method: Optional[nn.Module] = None  # the trained method, all its modules (e.g. ContextSSL's transformer)
    _cache: dict = field(default_factory=dict)

    @property
    def autocast(self) -> Optional[torch.dtype]:
        """The dtype encoders extract features in: the run's resolved training precision
        (bf16-mixed on a CPU or GPU with bf16, float16 only on a GPU), else None (float32). Probes
        fit on the float32 copy of the features."""
        dtype = autocast_dtype(self.cfg.trainer.get("precision"))
        return None if dtype == torch.float16 and self.device.type != "cuda" else dtype

    def features(self, name: str) -> FeatureSet:
        """Features of ``name``: an encoder's name or "raw_pixels"; computed once, under
        :attr:`autocast`."""
        return self.cached(("features", name), lambda: self.extract(name))

    def extract(self, name: str) -> FeatureSet:
        batch = int(self.cfg.eval.batch_size)
        if name == "raw_pixels":
            (a, ay), (b, by) = raw_pixels(self.bank, batch), raw_pixels(self.test, batch)
        else:
            (a, ay), (b, by) = (extract_features(self.encoders[name], d, batch, self.device, self.autocast)
                                for d in (self.bank, self.test))
        return FeatureSet(a, ay, b, by)

    def cached(self, key: tuple, compute):
        """``compute()``, computed once per evaluation under ``key`` (features other evaluations
        and report sections read again)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def subjects(self) -> list[str]:
        """What the standard probes are run on: the trained encoder, then the baselines."""
        names = ["trained"]
        if self.cfg.eval.baselines:
            names += ["random_init", "raw_pixels"]
        return names


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` with every key prefixed: ``prefixed("layer.block1.", {"r2": v})``."""
    return {prefix + k: v for k, v in metrics.items()}


def key_prefix(subject: str) -> str:
    """eval.json keys: the trained encoder's bare (``knn.top1``), baselines prefixed."""
    return "" if subject == "trained" else f"{subject}."
