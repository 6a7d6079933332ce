"""MoCo v3: symmetric InfoNCE between the queries of one view and the momentum keys of the other,
with the keys of the batch (no queue) as negatives.

Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021
(arXiv 2104.02057), sec. 3 and its Algorithm 1: ctr(q, k) = 2 tau * CrossEntropy(q k^T / tau,
positives on the diagonal), loss ctr(q1, k2) + ctr(q2, k1); tau = 0.2 for ViT (1.0 for ResNet-50).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import gather_no_grad, rank
from selfsup.losses.infonce import check_temperature
from selfsup.losses.nt_xent import check_pair


def mocov3_contrast(q: torch.Tensor, k: torch.Tensor, temperature: float = 0.2,
                    gather_distributed: bool = False) -> torch.Tensor:
    """ctr(q, k) = 2 t * mean_i -log( exp(u_i . v_i / t) / sum_j exp(u_i . v_j / t) ), with
    u = normalise(q), v = normalise(k) detached, j over every key of the batch.

    gather_distributed: the keys of every process are gathered (no graph: keys come from the
    momentum encoder), so the positive of this process's query i sits at column rank * N + i."""
    check_pair(q, k, "queries and keys")
    check_temperature(temperature)
    u, v = F.normalize(q, dim=1), F.normalize(k.detach().to(q.dtype), dim=1)
    if gather_distributed:
        keys, offset = gather_no_grad(v), rank() * u.shape[0]
    else:
        keys, offset = v, 0
    positives = torch.arange(u.shape[0], device=u.device) + offset
    return 2 * temperature * F.cross_entropy(u @ keys.T / temperature, positives)


def mocov3_loss(
    q1: torch.Tensor,
    q2: torch.Tensor,
    k1: torch.Tensor,
    k2: torch.Tensor,
    temperature: float = 0.2,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """MoCo v3's symmetrised loss ctr(q1, k2) + ctr(q2, k1) (:func:`mocov3_contrast`): q_v the
    query (online encoder, projector, predictor) of view v and k_v the key (momentum encoder and
    projector) of view v, all [N, d]. The keys are constants (detached). The 2 tau factor is the
    paper's pseudocode's; it offsets the 1 / tau that the logits put into the gradient.

    Distributed semantics: keys gathered from every process (no gradient), queries local; each
    process's loss is a mean over its own queries, so DDP's average over equal batches equals
    one process with the whole batch.

    >>> q1, q2, k1, k2 = (torch.randn(8, 256) for _ in range(4))
    >>> mocov3_loss(q1, q2, k1, k2).shape
    torch.Size([])
    """
    check_pair(q1, q2, "queries")
    return (mocov3_contrast(q1, k2, temperature, gather_distributed)
            + mocov3_contrast(q2, k1, temperature, gather_distributed))


class MoCoV3Loss(nn.Module):
    """Module form of :func:`mocov3_loss`: ``MoCoV3Loss(temperature=0.2)(q1, q2, k1, k2)``."""

    def __init__(self, temperature: float = 0.2, gather_distributed: bool = False):
        super().__init__()
        check_temperature(temperature)
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def forward(self, q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
        return mocov3_loss(q1, q2, k1, k2, self.temperature, self.gather_distributed)
