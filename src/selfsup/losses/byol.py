"""Prediction losses of the non-contrastive siamese methods: BYOL and SimSiam.

Both compare an online prediction p with a target z of the other view, and neither sends a
gradient into the target: BYOL's target comes from an EMA network, SimSiam stops the gradient
explicitly. Here the target is always detached.

Distributed semantics: no communication. Each loss is a mean of per-sample terms, so with
equal per-process batches DDP's average of the per-process means equals the mean over the
whole batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses.nt_xent import check_pair


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) = -mean_i cos(p_i, stopgrad(z_i)), in [-1, 1] (Chen & He, "Exploring Simple
    Siamese Representation Learning", CVPR 2021, eq. 1). p, z: [N, d]."""
    check_pair(p, z, "predictions and targets")
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """mean_i || p_i/|p_i| - z_i/|z_i| ||^2 = 2 - 2 mean_i cos(p_i, z_i), in [0, 4], with the
    target detached (Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, eq. 2)."""
    return 2.0 + 2.0 * negative_cosine(p, z)


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """BYOL's symmetrised loss (Grill et al. 2020, sec. 3.1): the *sum*
    normalized_mse(p1, z2) + normalized_mse(p2, z1), where p_v is the online prediction of view
    v and z_v the target network's projection of view v.

    >>> p1, p2, z1, z2 = (torch.randn(8, 256) for _ in range(4))
    >>> byol_loss(p1, p2, z1, z2).shape
    torch.Size([])
    """
    return normalized_mse(p1, z2) + normalized_mse(p2, z1)


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """SimSiam's symmetrised loss (Chen & He 2021, eq. 3): the *mean*
    D(p1, z2) / 2 + D(p2, z1) / 2, minimum -1, with z the projections of the same network,
    gradient stopped."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


class BYOLLoss(nn.Module):
    """Module form of :func:`byol_loss`: ``BYOLLoss()(p1, p2, z1, z2)``."""

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return byol_loss(p1, p2, z1, z2)


class SimSiamLoss(nn.Module):
    """Module form of :func:`simsiam_loss`: ``SimSiamLoss()(p1, p2, z1, z2)``."""

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return simsiam_loss(p1, p2, z1, z2)
