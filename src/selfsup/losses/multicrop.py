"""What DINO and SwAV share: a list of crops of one batch, and a cross-entropy averaged over the
(target crop, predicting crop) pairs of different crops."""
from __future__ import annotations

from typing import Sequence

import torch


def check_crops(crops: Sequence[torch.Tensor], name: str, like: torch.Tensor | None = None) -> None:
    """``crops`` must be a non-empty sequence of [N, K] tensors of one shape (that of ``like``
    when given): one row per sample, one column per output dimension / prototype."""
    if isinstance(crops, torch.Tensor) or len(crops) == 0:
        raise ValueError(f"{name} must be a non-empty list of [N, K] tensors, one per crop, got "
                         f"{'a tensor' if isinstance(crops, torch.Tensor) else 'an empty list'}")
    shape = (like if like is not None else crops[0]).shape
    for i, crop in enumerate(crops):
        if crop.dim() != 2 or crop.shape != shape:
            raise ValueError(f"{name}[{i}] must be an [N, K] tensor of shape {tuple(shape)} like the others, "
                             f"got {tuple(crop.shape)}")


def cross_crop_entropy(targets: Sequence[torch.Tensor], log_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over the pairs (t, s) with t < len(targets), s < len(log_probs) and s != t of

        mean_n  -sum_k targets[t][n, k] * log_probs[s][n, k]

    i.e. every crop s predicts the target distribution of every *other* crop t. Crop t of
    ``targets`` must be crop t of ``log_probs`` (the target crops come first). Targets are
    constants here (detached)."""
    pairs = [(t, s) for t in range(len(targets)) for s in range(len(log_probs)) if s != t]
    if not pairs:
        raise ValueError("a cross-crop loss needs at least two crops: with one target crop, pass at least "
                         "one more predicting crop")
    total = sum(-(targets[t].detach() * log_probs[s]).sum(1).mean() for t, s in pairs)
    return total / len(pairs)
