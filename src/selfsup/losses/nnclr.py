"""NNCLR: contrastive learning with the nearest neighbour from a support set as the positive.

Dwibedi, Aytar, Tompson, Sermanet, Zisserman, "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021 (arXiv 2104.14548),
sec. 3: the NNCLR loss, its symmetric term and the prediction head of the implementation
details; temperature 0.1, support set of 98,304 past embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import gather, gather_no_grad, rank
from selfsup.losses.infonce import check_queue, check_temperature
from selfsup.losses.nt_xent import check_pair


@torch.no_grad()
def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """NN(z, Q): for each row of z [N, d], the row of the support set Q [M, d] with the highest
    cosine similarity (the paper's argmin of ||z - q|| on L2-normalised embeddings; ties go to
    the first such row). Returns those support rows as stored [N, d], in z's dtype, without a
    graph: the positive is a constant."""
    if z.dim() != 2:
        raise ValueError(f"embeddings must be an [N, d] tensor, got {tuple(z.shape)}")
    check_queue(support, z.shape[1], "support")
    if support.shape[0] == 0:
        raise ValueError("the support set is empty: fill it (e.g. enqueue the first batch) before looking up "
                         "nearest neighbours")
    dtype = torch.promote_types(z.dtype, support.dtype)
    cosines = F.normalize(z.detach().to(dtype), dim=1) @ F.normalize(support.detach().to(dtype), dim=1).T
    return support[cosines.argmax(1)].detach().to(z.dtype)


def two_way_info_nce(anchors: torch.Tensor, targets: torch.Tensor, temperature: float,
                     gather_distributed: bool) -> torch.Tensor:
    """With a = normalise(anchors) (constants), b = normalise(targets) and s(i, k) = a_i . b_k / t:

        1/2 mean_i [ -log( exp(s(i, i)) / sum_k exp(s(i, k)) ) - log( exp(s(i, i)) / sum_k exp(s(k, i)) ) ]

    the InfoNCE of each anchor against all targets plus that of each target against all
    anchors. gather_distributed: k runs over the rows of every process (targets through the
    autograd-aware gather, anchors without a graph), i over this process's rows."""
    a, b = F.normalize(anchors.detach().to(targets.dtype), dim=1), F.normalize(targets, dim=1)
    if gather_distributed:
        all_a, all_b, offset = gather_no_grad(a), gather(b), rank() * a.shape[0]
    else:
        all_a, all_b, offset = a, b, 0
    positives = torch.arange(a.shape[0], device=a.device) + offset
    anchor_rows = F.cross_entropy(a @ all_b.T / temperature, positives)
    target_rows = F.cross_entropy(b @ all_a.T / temperature, positives)
    return 0.5 * (anchor_rows + target_rows)


def nnclr_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor,
    support: torch.Tensor,
    temperature: float = 0.1,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """NNCLR's loss, the symmetric form. With n1_i = NN(z1_i, Q), n2_i = NN(z2_i, Q) (constants,
    :func:`nearest_neighbour`), every vector L2-normalised, and for anchors a and targets b
    s(i, k) = a_i . b_k / t:

        l(a, b) = 1/2 mean_i [ -log( exp(s(i, i)) / sum_k exp(s(i, k)) )      (the NNCLR loss)
                               -log( exp(s(i, i)) / sum_k exp(s(k, i)) ) ]    (its symmetric term)
        L = 1/2 [ l(n1, p2) + l(n2, p1) ]

    The first term is the paper's NNCLR loss with the prediction of the other view in place of
    its embedding z_i^+ (the prediction head of the implementation details); the second is the
    term the paper adds to make the loss symmetric (the same pairs, normalised over the
    anchors); both are averaged, and the whole is symmetrised over the two views, so the value
    sits on the scale of one InfoNCE (log N at chance). The negatives are the other rows of the
    batch of the other side; within-view pairs are never contrasted.

    z1, z2: [N, d] projections of the two views (only used to look up neighbours, so no gradient
    reaches them here); p1, p2: [N, d] predictions (the only inputs with a gradient); support:
    [M, d] past embeddings (:class:`selfsup.models.momentum.EmbeddingQueue`, filled with z1
    after the step, M >= 1). temperature 0.1 is the paper's.

    gather_distributed: the sums over k run over the whole batch of every process (predictions
    through the autograd-aware gather, neighbours without a graph); with the same support set
    on every process, DDP's average of the per-process losses and gradients equals one process
    with the whole batch.

    >>> z1, z2, p1, p2 = (torch.randn(8, 32) for _ in range(4))
    >>> nnclr_loss(z1, z2, p1, p2, support=torch.randn(100, 32)).shape
    torch.Size([])
    """
    check_pair(z1, z2, "projections")
    check_pair(p1, p2, "predictions")
    check_pair(z1, p1, "projections and predictions")
    check_temperature(temperature)
    n1, n2 = nearest_neighbour(z1, support), nearest_neighbour(z2, support)
    return 0.5 * (two_way_info_nce(n1, p2, temperature, gather_distributed)
                  + two_way_info_nce(n2, p1, temperature, gather_distributed))


class NNCLRLoss(nn.Module):
    """Module form of :func:`nnclr_loss`: ``NNCLRLoss(temperature=0.1)(z1, z2, p1, p2, support)``."""

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__()
        check_temperature(temperature)
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
                support: torch.Tensor) -> torch.Tensor:
        return nnclr_loss(z1, z2, p1, p2, support, self.temperature, self.gather_distributed)
