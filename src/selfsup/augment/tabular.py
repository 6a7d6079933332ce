"""Batched augmentation of table rows."""
from __future__ import annotations

from typing import Sequence

import torch


def corrupt_features(x: torch.Tensor, groups: Sequence[Sequence[int]], rate: float, g: torch.Generator) -> torch.Tensor:
    """SCARF's corruption (Bahri, Jiang, Tay, Metzler, "SCARF: Self-Supervised Contrastive
    Learning using Random Feature Corruption", ICLR 2022): each field of each row is, with
    probability ``rate``, replaced by the same field of a random row of the batch (a draw from
    the field's empirical marginal).

    x: [N, D] float rows; groups: (start, end) column ranges, one per field (a one-hot block is
    one field and moves whole); columns in no group are never corrupted. Per-sample draws from
    ``g``, no Python loop over rows."""
    if not 0 <= rate <= 1:
        raise ValueError(f"corruption rate must be in [0, 1], got {rate}")
    n, d = x.shape
    field = torch.full((d,), -1, dtype=torch.long, device=x.device)
    for k, (start, end) in enumerate(groups):
        field[start:end] = k
    donors = torch.randint(0, n, (n, len(groups)), generator=g, device=x.device)
    replace = torch.rand(n, len(groups), generator=g, device=x.device) < rate
    grouped = field >= 0
    column_field = field.clamp(min=0)
    source = x.gather(0, donors[:, column_field])  # [N, D]: x[donor of the column's field, column]
    return torch.where(replace[:, column_field] & grouped, source, x)
