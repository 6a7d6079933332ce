"""InfoNCE against a positive key and a queue of negatives (MoCo)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses.nt_xent import check_pair


def check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def check_queue(queue: torch.Tensor, dim: int, name: str = "queue") -> None:
    if queue.dim() != 2 or queue.shape[1] != dim:
        raise ValueError(f"{name} must be a [K, {dim}] tensor (K entries of the embedding size), got {tuple(queue.shape)}")


def info_nce(
    q: torch.Tensor,
    k: torch.Tensor,
    queue: Optional[torch.Tensor] = None,
    temperature: float = 0.2,
) -> torch.Tensor:
    """InfoNCE of MoCo (He et al., "Momentum Contrast for Unsupervised Visual Representation
    Learning", CVPR 2020, eq. 1; MoCo v2: Chen et al. 2020, arXiv 2003.04297, temperature 0.2).

    With q_i, k_i and the queue entries n_j all L2-normalised,

        l_i = -log( exp(q_i . k_i / t) / (exp(q_i . k_i / t) + sum_j exp(q_i . n_j / t)) )

    and the result is the mean over the N queries. The keys of the other samples in the batch
    are not negatives (only the queue is). q, k: [N, d] (normalised inside); queue: [K, d] or
    None / empty (then the loss is 0: there is no negative). Keys and queue are constants
    (detached here): in MoCo they come from the momentum encoder and from earlier steps.

    Distributed semantics: no communication. Each process uses its own queries and keys and
    the queue, which is identical on every process because keys are gathered from all
    processes before they are enqueued (:class:`selfsup.models.momentum.EmbeddingQueue`). With
    equal per-process batches, DDP's average of the per-process means equals the mean over the
    whole batch.

    >>> q, k, queue = torch.randn(8, 128), torch.randn(8, 128), torch.randn(4096, 128)
    >>> info_nce(q, k, queue).shape
    torch.Size([])
    """
    check_pair(q, k, "queries and keys")
    check_temperature(temperature)
    u, v = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    positive = (u * v).sum(1, keepdim=True)
    if queue is None or queue.shape[0] == 0:
        negatives = u.new_zeros(u.shape[0], 0)
    else:
        check_queue(queue, u.shape[1])
        negatives = u @ F.normalize(queue.detach().to(u.dtype), dim=1).T
    logits = torch.cat([positive, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(u.shape[0], dtype=torch.long, device=u.device))


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce`: ``InfoNCELoss(temperature=0.2)(q, k, queue)``."""

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        check_temperature(temperature)
        self.temperature = temperature

    def forward(self, q: torch.Tensor, k: torch.Tensor, queue: Optional[torch.Tensor] = None) -> torch.Tensor:
        return info_nce(q, k, queue, self.temperature)
