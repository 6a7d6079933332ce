"""Triplet loss with in-batch mining: batch-hard and semi-hard negatives."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import all_reduce_mean, gather, gather_no_grad, rank

MINING = ("semi-hard", "batch-hard")


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances of the rows of a [n, d] to the rows of b [m, d] -> [n, m]."""
    d = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T
    return d.clamp_min(0)


def triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.5,
    mining: str = "semi-hard",
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Triplet loss over a batch, with D(a, b) = ||e_a - e_b||^2 (squared Euclidean, on the
    embeddings as given: normalise them first if wanted) and margin m.

    ``mining="semi-hard"`` (Schroff, Kalenichenko, Philbin, "FaceNet", CVPR 2015; the rule of
    TensorFlow's ``triplet_semihard_loss`` that Kolesnikov et al. 2019 use for Exemplar): every
    anchor-positive pair (a, p), p != a with the same label, takes as negative n the one with the
    smallest D(a, n) > D(a, p); if there is none, the largest D(a, n). The loss is the mean over
    all such pairs of max(D(a, p) - D(a, n) + m, 0).

    ``mining="batch-hard"`` (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017): every anchor a takes its farthest positive and nearest negative;
    the loss is the mean over anchors of max(max_p D(a, p) - min_n D(a, n) + m, 0).

    Pairs (semi-hard) or anchors (batch-hard) without a positive or without a negative are left
    out of the mean; with none left the loss is 0.

    embeddings: [N, d]; labels: int [N] (same label = positives).
    gather_distributed: every process mines its own anchors against the samples of all
    processes (labels must be unique across processes where they mean different samples),
    and the mean runs over the pairs of all processes, so after DDP's gradient averaging the
    result equals one process with the whole batch.

    >>> e, y = torch.randn(8, 16), torch.arange(4).repeat(2)
    >>> triplet_loss(e, y, margin=0.5, mining="batch-hard").shape
    torch.Size([])
    """
    check_triplet_args(embeddings, labels, margin, mining)
    n = embeddings.shape[0]
    if gather_distributed:
        others, other_labels, offset = gather(embeddings), gather_no_grad(labels), rank() * n
    else:
        others, other_labels, offset = embeddings, labels, 0
    d = squared_distances(embeddings, others)  # [n, N]
    same = labels[:, None] == other_labels[None, :]
    is_self = torch.zeros_like(same)
    is_self[torch.arange(n), torch.arange(n) + offset] = True
    positive, negative = same & ~is_self, ~same
    if mining == "batch-hard":
        terms, valid = batch_hard_terms(d, positive, negative, margin)
    else:
        terms, valid = semi_hard_terms(d, positive, negative, margin)
    total = torch.where(valid, terms, torch.zeros_like(terms)).sum()
    count = valid.sum().to(d.dtype)
    if gather_distributed:
        count = all_reduce_mean(count)  # the mean count: sum / mean count = world * sum / all pairs
    return total / count.clamp_min(1)


def batch_hard_terms(d, positive, negative, margin):
    hardest_positive = d.masked_fill(~positive, float("-inf")).amax(dim=1)
    hardest_negative = d.masked_fill(~negative, float("inf")).amin(dim=1)
    valid = positive.any(dim=1) & negative.any(dim=1)
    gap = torch.where(valid, hardest_positive - hardest_negative, torch.zeros_like(hardest_positive))
    return F.relu(gap + margin), valid


def semi_hard_terms(d, positive, negative, margin):
    sorted_negatives = d.masked_fill(~negative, float("inf")).sort(dim=1).values  # finite ones first
    num_negatives = negative.sum(dim=1, keepdim=True)
    # index of the first negative strictly farther than each positive; none -> the farthest one
    first_farther = torch.searchsorted(sorted_negatives.detach(), d.detach().contiguous(), right=True)
    index = torch.where(first_farther < num_negatives, first_farther, num_negatives - 1).clamp_min(0)
    chosen = sorted_negatives.gather(1, index)
    valid = positive & (num_negatives > 0)
    gap = torch.where(valid, d - chosen, torch.zeros_like(d))
    return F.relu(gap + margin), valid


def check_triplet_args(embeddings: torch.Tensor, labels: torch.Tensor, margin: float, mining: str) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [N, d], got {tuple(embeddings.shape)}")
    if labels.shape != embeddings.shape[:1]:
        raise ValueError(f"labels must be [N] = [{embeddings.shape[0]}], got {tuple(labels.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, got {mining!r}")


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss`: ``TripletLoss(margin=0.5, mining="semi-hard")(e, y)``."""

    def __init__(self, margin: float = 0.5, mining: str = "semi-hard", gather_distributed: bool = False):
        super().__init__()
        check_triplet_args(torch.zeros(1, 1), torch.zeros(1), margin, mining)
        self.margin, self.mining, self.gather_distributed = margin, mining, gather_distributed

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return triplet_loss(embeddings, labels, self.margin, self.mining, self.gather_distributed)
