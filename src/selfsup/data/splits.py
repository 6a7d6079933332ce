"""Seeded, class-stratified subsets: ``data.limit``, the validation split, labelled fractions."""
from __future__ import annotations

import torch

from selfsup.data.base import UNLABELLED


def stratified_indices(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` indices drawn without replacement so that each class keeps its share
    (largest-remainder rounding); unlabelled samples (-1) count as one more class. Sorted."""
    n = len(labels)
    if count >= n:
        return torch.arange(n)
    if count <= 0:
        return torch.zeros(0, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * count / n
    quota = exact.floor().long()
    remainder_order = torch.argsort(exact - quota, descending=True, stable=True)
    quota[remainder_order[: count - int(quota.sum())]] += 1
    chosen = []
    for cls, q in zip(classes.tolist(), quota.tolist()):
        members = torch.nonzero(labels == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=g)[:q]])
    return torch.sort(torch.cat(chosen)).values


def split_off(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held_out) indices: a seeded stratified ``fraction`` held out (at least one sample
    when fraction > 0 and there are at least two samples)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"a split fraction must be in [0, 1), got {fraction}")
    n = len(labels)
    count = 0 if fraction == 0 else min(n - 1, max(1, round(fraction * n)))
    held = stratified_indices(labels, count, seed)
    mask = torch.ones(n, dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def keep_labelled_fraction(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Labels with only a seeded, class-balanced ``fraction`` kept; the rest become -1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"data.labelled_fraction must be in (0, 1], got {fraction}")
    keep = stratified_indices(labels, max(1, round(fraction * len(labels))), seed)
    out = torch.full_like(labels, UNLABELLED)
    out[keep] = labels[keep]
    return out
