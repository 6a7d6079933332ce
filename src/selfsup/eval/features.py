"""Frozen features: the encoder in eval mode, no gradients, batch by batch."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from selfsup.data.base import IndexedDataset
from selfsup.data.loader import make_loader


def as_float_inputs(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float 0..1; float clips and signals unchanged."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def autocast_dtype(precision: str) -> Optional[torch.dtype]:
    """The autocast dtype of a resolved ``trainer.precision`` (None: float32)."""
    return {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
            "16-true": torch.float16}.get(str(precision))


@torch.no_grad()
def extract_features(encoder: nn.Module, dataset: IndexedDataset, batch_size: int = 1024,
                     device: str | torch.device = "cpu",
                     autocast: Optional[torch.dtype] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, d] float32 on the CPU, labels [N]) of every sample, in dataset order. The
    encoder is put in eval mode (BatchNorm uses its running statistics) and restored after;
    ``autocast`` runs its forward under that autocast dtype (the run's training precision)."""
    was_training = encoder.training
    encoder.eval().to(device)
    device_type = torch.device(device).type
    feats, labels = [], []
    try:
        for x, y in make_loader(dataset, batch_size, shuffle=False):
            with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None):
                out = encoder(as_float_inputs(x).to(device))
            feats.append(out.float().flatten(1).cpu())
            labels.append(y)
    finally:
        encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def raw_pixels(dataset: IndexedDataset, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs themselves, flattened: the raw-pixels baseline."""
    return extract_features(nn.Flatten(), dataset, batch_size)
