"""The losses of ContextSSL: contrastive prediction of the next state, plus the auxiliary loss.

Gupta, Wang, Wang, Jaakkola, Jegelka. "In-Context Symmetries: Self-Supervised Learning through
Contextual World Models", NeurIPS 2024 (arXiv 2405.18193), sec. 4.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses.nt_xent import nt_xent

# the original code's clamp of the cosine similarity (ContextSSL ``main.py``)
ORIGINAL_MIN_COSINE = 1e-7


def context_prediction_loss(
    predictions: torch.Tensor,
    temperature: float = 0.1,
    clamp_cosine: bool = False,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """NT-Xent over the transformer's outputs, whose rows come in pairs: the target of row 2k is
    row 2k+1 and that of 2k+1 is 2k (the prediction from [z_k || a_k] and the encoding of z+_k).

    With u = normalise(p), s(i, j) = u_i . u_j / temperature and partner j(i) = i XOR 1,

        l_i = -log( exp(s(i, j(i))) / sum_{k != i} exp(s(i, k)) ),   loss = mean_i l_i.

    clamp_cosine: the original code's variant, cosines clamped below at 1e-7 before the
    temperature, so pushing a negative past orthogonal earns nothing (documented deviation from
    the paper's plain NT-Xent; off by default).

    predictions: [2N, d], interleaved as above; gather_distributed as in :func:`nt_xent` (every
    process keeps its pairs whole, negatives come from all processes)."""
    if predictions.dim() != 2 or predictions.shape[0] % 2:
        raise ValueError(f"predictions must be [2N, d] rows in (source, target) pairs, got {tuple(predictions.shape)}")
    return nt_xent(predictions[0::2], predictions[1::2], temperature, gather_distributed,
                   ORIGINAL_MIN_COSINE if clamp_cosine else None)


def auxiliary_loss(
    estimates: torch.Tensor,
    targets: torch.Tensor,
    columns: Mapping[str, Sequence[int]],
    factors: Sequence[str],
) -> torch.Tensor:
    """Sum over the given factors of the mean squared error on that factor's columns,

        L_aux = sum_{f in factors} mean_{i, c in f} (e_ic - t_ic)^2,

    the original's ``MSE(e[:, :4], quat) + MSE(e[:, 4:], hues)`` for the factors the environment
    gives; zero when it gives none. estimates, targets: [M, P]; columns: factor ->
    (start, end) column range."""
    if estimates.shape != targets.shape:
        raise ValueError(f"estimates {tuple(estimates.shape)} and targets {tuple(targets.shape)} differ in shape")
    total = estimates.new_zeros(())
    for name in factors:
        start, end = columns[name]
        total = total + F.mse_loss(estimates[:, start:end], targets[:, start:end].to(estimates.dtype))
    return total


class ContextSSLLoss(nn.Module):
    """L = L_ctr + aux_weight * L_aux (the paper: temperature 0.1, aux_weight 5).

    ``forward(predictions, estimates, targets, columns, factors)`` -> dict with ``loss``,
    ``contrastive`` and ``auxiliary``."""

    def __init__(self, temperature: float = 0.1, aux_weight: float = 5.0, clamp_cosine: bool = False,
                 gather_distributed: bool = False):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be non-negative, got {aux_weight}")
        self.temperature, self.aux_weight = temperature, aux_weight
        self.clamp_cosine, self.gather_distributed = clamp_cosine, gather_distributed

    def forward(self, predictions, estimates, targets, columns, factors) -> dict[str, torch.Tensor]:
        contrastive = context_prediction_loss(predictions, self.temperature, self.clamp_cosine, self.gather_distributed)
        auxiliary = auxiliary_loss(estimates, targets, columns, factors)
        return {"loss": contrastive + self.aux_weight * auxiliary, "contrastive": contrastive, "auxiliary": auxiliary}
