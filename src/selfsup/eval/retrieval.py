"""Retrieval metrics: the rank of the right candidate, mean reciprocal rank, Hit@k."""
from __future__ import annotations

from typing import Iterable

import torch


def true_ranks(scores: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """scores [Q, C] of C candidates per query, truth [Q] the right candidate's index -> its rank
    [Q] (1 = best), counting ties against it: 1 + the number of candidates scored >= it, itself
    excluded."""
    right = scores.gather(1, truth.view(-1, 1))
    return (scores >= right).sum(1)


def mrr_and_hits(ranks: torch.Tensor, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """``mrr`` = mean of 1 / rank, ``hit<k>`` = fraction of ranks <= k."""
    ranks = ranks.double()
    out = {"mrr": float((1 / ranks).mean())}
    out.update({f"hit{k}": float((ranks <= k).double().mean()) for k in ks})
    return out


def chance_mrr_and_hits(candidates: int, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """What a uniformly random ranking of ``candidates`` scores: MRR = H_C / C, Hit@k = k / C."""
    out = {"mrr": sum(1 / r for r in range(1, candidates + 1)) / candidates}
    out.update({f"hit{k}": min(k, candidates) / candidates for k in ks})
    return out
