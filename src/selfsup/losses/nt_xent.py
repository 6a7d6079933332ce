"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import gather, rank


def check_pair(z1: torch.Tensor, z2: torch.Tensor, name: str = "embeddings") -> None:
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"{name} must be two [N, d] tensors of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    gather_distributed: bool = False,
    min_cosine: float | None = None,
) -> torch.Tensor:
    """NT-Xent loss (Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020, eq. 1).

    With u = normalise(z), the 2N rows a = [z1; z2] and s(a, b) = u_a . u_b / temperature,
    the loss of row i whose positive (the other view of the same sample) is j(i) is

        l_i = -log( exp(s(i, j(i))) / sum_{k != i} exp(s(i, k)) )

    and the result is the mean over all 2N rows. z1, z2: [N, d], not normalised (cosine
    similarity is taken inside); the dtype is preserved.

    gather_distributed: with several processes, every process contrasts its own rows against
    the rows of all processes (autograd-aware gather); after DDP's gradient averaging this
    equals one process with the whole batch.

    min_cosine: cosines below it are raised to it before the temperature (ContextSSL's code uses
    ``clamp(cos, min=1e-7)``, so negatives are never pushed past orthogonal); None = plain cosine.

    >>> z1, z2 = torch.randn(8, 128), torch.randn(8, 128)
    >>> nt_xent(z1, z2, temperature=0.5).shape
    torch.Size([])
    """
    check_pair(z1, z2)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = u1.shape[0]
    if gather_distributed:
        all1, all2, offset = gather(u1), gather(u2), rank() * n
    else:
        all1, all2, offset = u1, u2, 0
    total = all1.shape[0]
    anchors = torch.cat([u1, u2])
    cosines = anchors @ torch.cat([all1, all2]).T  # [2n, 2N]
    if min_cosine is not None:
        cosines = cosines.clamp(min=min_cosine)
    logits = cosines / temperature
    own = torch.arange(n, device=z1.device) + offset
    self_index = torch.cat([own, own + total])
    positive_index = torch.cat([own + total, own])
    rows = torch.arange(2 * n, device=z1.device)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[rows, self_index] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, positive_index)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent`: ``NTXentLoss(temperature=0.5)(z1, z2)``."""

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False, min_cosine: float | None = None):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.min_cosine = min_cosine

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature, self.gather_distributed, self.min_cosine)
