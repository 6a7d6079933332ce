"""Weighted k-nearest-neighbour classification on frozen features."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class scores [Q, num_classes] of the weighted kNN of Wu et al. ("Unsupervised Feature
    Learning via Non-Parametric Instance Discrimination", CVPR 2018), the SSL standard:

        score_c(q) = sum over the k bank samples b most cosine-similar to q with label c
                     of exp(cos(q, b) / temperature)

    ``k`` is capped at the bank size."""
    if bank.shape[0] != bank_labels.shape[0]:
        raise ValueError(f"bank has {bank.shape[0]} features but {bank_labels.shape[0]} labels")
    k = min(k, bank.shape[0])
    bank_n = F.normalize(bank.float(), dim=1)
    scores = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sims, index = (q @ bank_n.T).topk(k, dim=1)
        weights = torch.exp(sims / temperature)
        s = torch.zeros(q.shape[0], num_classes, dtype=weights.dtype)
        s.scatter_add_(1, bank_labels[index], weights)
        scores.append(s)
    return torch.cat(scores)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the k highest scores (ties broken by index)."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    hits = order == labels.view(-1, 1)
    return {k: float(hits[:, : min(k, scores.shape[1])].any(dim=1).float().mean()) for k in ks}


def knn_accuracy(bank, bank_labels, queries, query_labels, num_classes, k=200, temperature=0.1) -> dict[int, float]:
    """kNN top-1 and top-5 accuracy; bank samples without a label (-1) are left out, and k is
    min(k, bank size - 1) as in the standard protocol."""
    labelled = bank_labels >= 0
    bank, bank_labels = bank[labelled], bank_labels[labelled]
    k = max(1, min(k, bank.shape[0] - 1))
    scores = knn_predict(bank, bank_labels, queries, num_classes, k, temperature)
    return topk_accuracy(scores, query_labels)
