"""SupCon on partly labelled data: L = L_unsup + lambda * L_sup, in a batch or against a queue.

Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020 (eq. 2, the "L_out" form); the
mixture with a self-supervised term over unlabelled samples follows fastai self_supervised's
SupCon / SupConMOCO description (../shared/seeds/supcon.txt).

Unlabelled samples carry the label ``unsup_class_id`` (default -1, so no real class is ever
taken for "unlabelled"). Two views per sample; with every embedding L2-normalised and
s(i, a) = z_i . z_a / t:

    L_unsup = mean_{i in I}   -log( exp(s(i, j(i))) / sum_{a in A(i)} exp(s(i, a)) )
    L_sup   = mean_{i in I_l} -1/|P(i)| sum_{p in P(i)} log( exp(s(i, p)) / sum_{a in A_l(i)} exp(s(i, a)) )

- j(i) is the other view of i's sample (the self-supervised positive).
- ``unsup_method='all'``: I is every view and A(i) every other view.
  ``unsup_method='only'``: I and A(i) hold only unlabelled views, so an unlabelled sample's
  negatives are the other unlabelled samples.
- I_l is every labelled view; A_l(i) every other labelled view; P(i) the labelled views of
  i's class other than i itself (its own other view included).
- A row with no positive or no negative contributes zero (never NaN) and still counts in the
  mean over its anchors; a term without anchors is zero.

With a momentum encoder (SupCon-MoCo) the anchors are the queries of one view and the
candidates are the keys of the other view of the whole batch followed by a queue of earlier
keys with their labels; j(i) is i's own key, and no candidate is i itself.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import gather, gather_no_grad, rank, world_size
from selfsup.losses.infonce import check_queue, check_temperature
from selfsup.losses.nt_xent import check_pair
from selfsup.losses.precision import float32_compute

UNSUP_METHODS = ("all", "only")


def check_unsup_method(unsup_method: str) -> None:
    if unsup_method not in UNSUP_METHODS:
        raise ValueError(f"unsup_method must be one of {', '.join(UNSUP_METHODS)}, got {unsup_method!r}")


def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> None:
    if labels.dim() != 1 or labels.shape[0] != n or labels.dtype.is_floating_point:
        raise ValueError(f"{name} must be an integer tensor [{n}] (one class id per sample), got "
                         f"{labels.dtype} {tuple(labels.shape)}")


def contrastive_rows(logits: torch.Tensor, candidates: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Per-row loss -1/|P(i)| sum_{p in P(i)} log softmax_{a in A(i)}(logits_i)_p.

    logits: [n, m]; candidates (A(i)) and positives (P(i)) are bool [n, m] masks, positives a
    subset of candidates. Rows with no positive or no negative (a candidate that is not a
    positive) give 0 with a zero gradient."""
    positives = positives & candidates
    ok = positives.any(1) & (candidates & ~positives).any(1)
    # rows that give 0 are computed over every column, so that nothing in them is infinite
    whole = ~ok.unsqueeze(1)
    masked = logits.masked_fill(~(candidates | whole), float("-inf"))
    log_prob = masked - masked.logsumexp(1, keepdim=True)
    chosen = positives | whole
    rows = -log_prob.masked_fill(~chosen, 0.0).sum(1) / chosen.sum(1)
    return torch.where(ok, rows, torch.zeros_like(rows))


def anchor_mean(rows: torch.Tensor, anchors: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    """Mean of ``rows`` over the anchors of the whole (possibly distributed) batch.

    Processes may hold different numbers of anchors, so the count is summed over processes and
    each process returns world_size * (its own sum) / (global count): the average of these over
    processes, which DDP's gradient averaging takes, is the global mean."""
    count = anchors.sum()
    world = 1
    if gather_distributed and world_size() > 1:
        count, world = gather_no_grad(count.view(1)).sum(), world_size()
    return rows.masked_fill(~anchors, 0.0).sum() * world / count.clamp_min(1)


def _check_common(labels: torch.Tensor, n: int, temperature: float, unsup_method: str) -> None:
    check_labels(labels, n)
    check_temperature(temperature)
    check_unsup_method(unsup_method)


@float32_compute
def supcon_terms(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    unsup_class_id: int = -1,
    unsup_method: str = "all",
    gather_distributed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_unsup, L_sup) of the module docstring for two views z1, z2 [N, d] (normalised inside)
    of N samples with ``labels`` [N].

    gather_distributed: every process's anchors are its own views; candidates are the views of
    every process (autograd-aware gather of embeddings, labels gathered without a graph), and
    each term is normalised by the anchor count of the whole batch, so that after DDP's
    averaging the loss and gradients equal one process holding the whole batch.

    Computed in float32 at least, with autocast off (:func:`~selfsup.losses.precision.float32_compute`)."""
    check_pair(z1, z2)
    n = z1.shape[0]
    _check_common(labels, n, temperature, unsup_method)
    u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    if gather_distributed:
        all1, all2, all_labels, offset = gather(u1), gather(u2), gather_no_grad(labels), rank() * n
    else:
        all1, all2, all_labels, offset = u1, u2, labels, 0
    total = all1.shape[0]
    anchor_labels = torch.cat([labels, labels])
    candidate_labels = torch.cat([all_labels, all_labels])
    logits = torch.cat([u1, u2]) @ torch.cat([all1, all2]).T / temperature  # [2n, 2N]

    own = torch.arange(n, device=z1.device) + offset
    columns = torch.arange(2 * total, device=z1.device).unsqueeze(0)
    not_self = columns != torch.cat([own, own + total]).unsqueeze(1)
    partner = columns == torch.cat([own + total, own]).unsqueeze(1)
    unlabelled_anchor = anchor_labels == unsup_class_id
    unlabelled_candidate = (candidate_labels == unsup_class_id).unsqueeze(0)

    if unsup_method == "all":
        unsup_anchor, unsup_candidates = torch.ones_like(unlabelled_anchor), not_self
    else:
        unsup_anchor, unsup_candidates = unlabelled_anchor, not_self & unlabelled_candidate
    unsup_rows = contrastive_rows(logits, unsup_candidates, partner)

    sup_candidates = not_self & ~unlabelled_candidate
    same_class = anchor_labels.unsqueeze(1) == candidate_labels.unsqueeze(0)
    sup_rows = contrastive_rows(logits, sup_candidates, same_class)
    return (anchor_mean(unsup_rows, unsup_anchor, gather_distributed),
            anchor_mean(sup_rows, ~unlabelled_anchor, gather_distributed))


def supcon_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    reg_lambda: float = 1.0,
    unsup_class_id: int = -1,
    unsup_method: str = "all",
    gather_distributed: bool = False,
) -> torch.Tensor:
    """L_unsup + reg_lambda * L_sup over a batch of two views (see :func:`supcon_terms`).
    Temperature 0.1 is Khosla et al.'s; reg_lambda 1.0 the seed's.

    >>> z1, z2 = torch.randn(8, 128), torch.randn(8, 128)
    >>> labels = torch.tensor([0, 0, 1, 1, -1, -1, -1, 2])  # -1: unlabelled
    >>> supcon_loss(z1, z2, labels).shape
    torch.Size([])
    """
    unsup, sup = supcon_terms(z1, z2, labels, temperature, unsup_class_id, unsup_method, gather_distributed)
    return unsup + reg_lambda * sup


@float32_compute
def supcon_queue_terms(
    q: torch.Tensor,
    k: torch.Tensor,
    labels: torch.Tensor,
    queue: Optional[torch.Tensor] = None,
    queue_labels: Optional[torch.Tensor] = None,
    temperature: float = 0.1,
    unsup_class_id: int = -1,
    unsup_method: str = "all",
    gather_distributed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_unsup, L_sup) of SupCon-MoCo: queries q [N, d] of one view against the keys k [N, d]
    of the other view (from the momentum encoder) of the whole batch, then ``queue`` [K, d]
    with ``queue_labels`` [K]. Keys and queue are constants (detached); all are normalised.

    gather_distributed: keys and their labels are gathered from every process (no graph:
    keys carry none), so every process contrasts its queries against the keys of the whole
    batch; terms are normalised by the global anchor count (see :func:`anchor_mean`).
    Computed in float32 at least, with autocast off."""
    check_pair(q, k, "queries and keys")
    n = q.shape[0]
    _check_common(labels, n, temperature, unsup_method)
    u, v = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    if gather_distributed:
        keys, key_labels, offset = gather_no_grad(v), gather_no_grad(labels), rank() * n
    else:
        keys, key_labels, offset = v, labels, 0
    if queue is not None and queue.shape[0] > 0:
        check_queue(queue, u.shape[1])
        if queue_labels is None:
            raise ValueError("supcon_queue_terms needs queue_labels with the queue (one class id per entry)")
        check_labels(queue_labels, queue.shape[0], "queue_labels")
        keys = torch.cat([keys, F.normalize(queue.detach().to(u.dtype), dim=1)])
        key_labels = torch.cat([key_labels, queue_labels.to(key_labels.dtype)])
    logits = u @ keys.T / temperature  # [n, N + K]

    own = torch.arange(n, device=q.device) + offset
    own_key = torch.arange(keys.shape[0], device=q.device).unsqueeze(0) == own.unsqueeze(1)
    unlabelled_anchor = labels == unsup_class_id
    unlabelled_candidate = (key_labels == unsup_class_id).unsqueeze(0).expand_as(logits)

    if unsup_method == "all":
        unsup_anchor, unsup_candidates = torch.ones_like(unlabelled_anchor), torch.ones_like(own_key)
    else:
        unsup_anchor, unsup_candidates = unlabelled_anchor, unlabelled_candidate
    unsup_rows = contrastive_rows(logits, unsup_candidates, own_key)

    same_class = labels.unsqueeze(1) == key_labels.unsqueeze(0)
    sup_rows = contrastive_rows(logits, ~unlabelled_candidate, same_class)
    return (anchor_mean(unsup_rows, unsup_anchor, gather_distributed),
            anchor_mean(sup_rows, ~unlabelled_anchor, gather_distributed))


class SupConLoss(nn.Module):
    """Module form of :func:`supcon_loss` (batch) and, with a queue, of SupCon-MoCo:
    ``SupConLoss()(z1, z2, labels)`` or ``SupConLoss()(q, k, labels, queue, queue_labels)``."""

    def __init__(self, temperature: float = 0.1, reg_lambda: float = 1.0, unsup_class_id: int = -1,
                 unsup_method: str = "all", gather_distributed: bool = False):
        super().__init__()
        check_temperature(temperature)
        check_unsup_method(unsup_method)
        self.temperature, self.reg_lambda = temperature, reg_lambda
        self.unsup_class_id, self.unsup_method = unsup_class_id, unsup_method
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor,
                queue: Optional[torch.Tensor] = None, queue_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        common = dict(temperature=self.temperature, unsup_class_id=self.unsup_class_id,
                      unsup_method=self.unsup_method, gather_distributed=self.gather_distributed)
        if queue is None:
            unsup, sup = supcon_terms(z1, z2, labels, **common)
        else:
            unsup, sup = supcon_queue_terms(z1, z2, labels, queue, queue_labels, **common)
        return unsup + self.reg_lambda * sup
