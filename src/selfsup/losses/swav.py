"""SwAV: codes from an equipartitioned (Sinkhorn-Knopp) assignment to prototypes, predicted
across crops.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments", NeurIPS 2020 (arXiv 2006.09882): the swapped prediction of
eq. 1-2, the online codes of sec. 3.1 (eq. 3, Q* = Diag(u) exp(C^T Z / eps) Diag(v)) with
eps = 0.05 and 3 Sinkhorn iterations, the softmax temperature tau = 0.1, and the optional queue
of earlier features when the batch is small (sec. 3.1 / appendix).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import gather_no_grad
from selfsup.losses.infonce import check_temperature
from selfsup.losses.multicrop import check_crops, cross_crop_entropy


def check_sinkhorn(epsilon: float, iterations: int) -> None:
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    queue_scores: Optional[torch.Tensor] = None,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """SwAV's codes Q [N, K] for prototype scores [N, K] (sample . prototype), without gradient.

    Starting from exp(scores / epsilon), each iteration divides every prototype column by its
    sum over all samples, then every sample row by its sum over the prototypes. This is the
    paper's alternation (prototype marginals 1/K, sample marginals 1/B, then the final
    multiplication by B) with the constant factors, which the next division cancels, left out.
    So every returned row sums to 1 (a sample's soft assignment), and the column sums approach
    the equipartition B / K as the iterations grow (B the number of rows normalised together).
    The divisions run on logarithms (subtracting log-sum-exps), so no score, however large,
    overflows or underflows a whole row.

    queue_scores: [M, K] scores of earlier features (against the current prototypes). They
    take part in the normalisation and their codes are dropped. They must be the same on every
    process (as :class:`selfsup.models.momentum.EmbeddingQueue`, which gathers before it
    enqueues, keeps them): their sums are added once, not once per process. (SwAV's code keeps
    one queue per process of that process's features; a shared queue of all of them is the
    same set of rows.)

    gather_distributed: the prototype sums run over the rows of every process (each process's
    log-sums are gathered and combined, an all-reduced sum; the per-sample sums are local
    anyway), so each process returns its own rows of the codes of the whole batch: exactly the
    codes one process would compute for all of it.
    Computed in float32 at least; returned in the dtype of ``scores``.

    >>> codes = sinkhorn_knopp(torch.randn(8, 16))   # [8, 16]; every row sums to 1
    >>> bool(torch.allclose(codes.sum(1), torch.ones(8)))
    True
    """
    if scores.dim() != 2 or scores.shape[0] == 0:
        raise ValueError(f"scores must be a non-empty [N, K] tensor, got {tuple(scores.shape)}")
    check_sinkhorn(epsilon, iterations)
    dtype = torch.promote_types(scores.dtype, torch.float32)
    own = scores.detach().to(dtype)
    if queue_scores is None:
        queue_scores = own.new_zeros(0, own.shape[1])
    if queue_scores.dim() != 2 or queue_scores.shape[1] != own.shape[1]:
        raise ValueError(f"queue_scores must be an [M, {own.shape[1]}] tensor (K prototypes like scores), got "
                         f"{tuple(queue_scores.shape)}")
    shared = queue_scores.detach().to(dtype)

    log_q, log_shared = own / epsilon, shared / epsilon
    for _ in range(iterations):
        # log of each prototype's sum over the rows of every process, then over the queue rows
        per_process = log_q.logsumexp(0, keepdim=True)
        if gather_distributed:
            per_process = gather_no_grad(per_process)
        log_prototype_sums = torch.cat([per_process, log_shared.logsumexp(0, keepdim=True)]).logsumexp(0)
        log_q, log_shared = log_q - log_prototype_sums, log_shared - log_prototype_sums
        log_q, log_shared = log_q - log_q.logsumexp(1, keepdim=True), log_shared - log_shared.logsumexp(1, keepdim=True)
    return log_q.exp().to(scores.dtype)


def swav_loss(scores: Sequence[torch.Tensor], codes: Sequence[torch.Tensor], temperature: float = 0.1) -> torch.Tensor:
    """SwAV's swapped prediction (eq. 1-2): with p_j = softmax(scores_j / tau),

        L = mean over pairs (i, j), j != i, of  mean_n  -sum_k q_i[n, k] log p_j[n, k]

    where i runs over the crops that have codes (the global crops) and j over all crops: every
    other crop predicts the codes of crop i. scores: one [N, K] tensor of prototype scores per
    crop, the global crops *first* (scores[i] is the crop that codes[i] were computed from);
    codes: one [N, K] tensor per global crop (:func:`sinkhorn_knopp`), constants (detached).
    The mean over pairs is the paper's (its code averages over the other crops, then over the
    coded crops).

    Distributed semantics: no communication here (the codes already hold the whole batch); a
    mean over this process's samples, so DDP's average over equal batches is the whole-batch
    loss.

    >>> scores = [torch.randn(8, 30) for _ in range(4)]   # 2 global + 2 local crops
    >>> swav_loss(scores, [sinkhorn_knopp(s) for s in scores[:2]]).shape
    torch.Size([])
    """
    check_crops(scores, "scores")
    check_crops(codes, "codes", like=scores[0])
    check_temperature(temperature)
    if len(codes) > len(scores):
        raise ValueError(f"scores must hold every coded (global) crop first, then the others: got {len(scores)} "
                         f"crops of scores for {len(codes)} crops of codes")
    return cross_crop_entropy(codes, [F.log_softmax(s / temperature, dim=1) for s in scores])


class SwAVLoss(nn.Module):
    """Module form: Sinkhorn codes for the first ``num_global_crops`` crops, then
    :func:`swav_loss`. ``SwAVLoss()(scores)`` or, with one queue per global crop,
    ``SwAVLoss()(scores, queue_scores=[queue_0 @ prototypes.T, queue_1 @ prototypes.T])``."""

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05, iterations: int = 3,
                 num_global_crops: int = 2, gather_distributed: bool = False):
        super().__init__()
        check_temperature(temperature)
        check_sinkhorn(epsilon, iterations)
        if num_global_crops < 1:
            raise ValueError(f"num_global_crops must be at least 1, got {num_global_crops}")
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, iterations
        self.num_global_crops, self.gather_distributed = num_global_crops, gather_distributed

    def forward(self, scores: Sequence[torch.Tensor],
                queue_scores: Optional[Sequence[Optional[torch.Tensor]]] = None) -> torch.Tensor:
        check_crops(scores, "scores")
        if len(scores) < self.num_global_crops:
            raise ValueError(f"scores holds {len(scores)} crops, fewer than num_global_crops={self.num_global_crops}")
        if queue_scores is None:
            queue_scores = [None] * self.num_global_crops
        if len(queue_scores) != self.num_global_crops:
            raise ValueError(f"queue_scores needs one entry per global crop ({self.num_global_crops}), "
                             f"got {len(queue_scores)}")
        codes = [sinkhorn_knopp(scores[i], self.epsilon, self.iterations, queue_scores[i], self.gather_distributed)
                 for i in range(self.num_global_crops)]
        return swav_loss(scores, codes, self.temperature)
