"""Frozen features: the encoder in eval mode, no gradients, batch by batch."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.data.base import IndexedDataset
from selfsup.data.loader import make_loader


def as_float_inputs(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float 0..1; float clips and signals unchanged."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def extract_features(encoder: nn.Module, dataset: IndexedDataset, batch_size: int = 1024,
                     device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, d] float32 on the CPU, labels [N]) of every sample, in dataset order. The
    encoder is put in eval mode (BatchNorm uses its running statistics) and restored after."""
    was_training = encoder.training
    encoder.eval().to(device)
    feats, labels = [], []
    try:
        for x, y in make_loader(dataset, batch_size, shuffle=False):
            feats.append(encoder(as_float_inputs(x).to(device)).float().flatten(1).cpu())
            labels.append(y)
    finally:
        encoder.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def raw_pixels(dataset: IndexedDataset, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs themselves, flattened: the raw-pixels baseline."""
    return extract_features(nn.Flatten(), dataset, batch_size)
