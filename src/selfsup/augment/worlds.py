"""Worlds for ContextSSL: how a batch becomes (view, action, next view) pairs with known actions.

Gupta, Wang, Wang, Jaakkola, Jegelka. "In-Context Symmetries: Self-Supervised Learning through
Contextual World Models", NeurIPS 2024. A world knows the transformations of one kind of data:
it draws them per sample from a ``torch.Generator``, applies them on the device, and returns the
action between the two views (by named factors, see :mod:`selfsup.data.actions`) and the
absolute parameters of the second view (the auxiliary predictor's target).

- :class:`RotColorWorld` (``rotcolor-mnist``): two fresh renders of each canonical digit, with
  rotation and digit/background hues drawn as the dataset draws its recorded views.
- :class:`SensitiveAttributeWorld` (``adult``): two SCARF-corrupted copies of each row; the
  second has its sensitive attribute flipped with probability ``flip_prob``. A context that
  gives this action asks for equivariance to the attribute, one that withholds it (``none``)
  for invariance (the paper's UCI Adult experiment; its code is not released, so this pairing
  is our design).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from selfsup.augment.tabular import corrupt_features
from selfsup.data.rotcolor import absolute_params, draw_view_params, relative_action, render
from selfsup.data.actions import NONE, ActionFactors


@dataclass
class Pairs:
    """first / second: the two views' inputs [N, ...]; action [N, A]: from first to second, every
    factor given; target [N, A]: absolute parameters of the second view."""

    first: torch.Tensor
    second: torch.Tensor
    action: torch.Tensor
    target: torch.Tensor


class RotColorWorld:
    """Views of canonical digits [N, C, S, S] (0..1) at fresh (theta, h_f, h_b); action
    [cos dtheta, sin dtheta, dh_f, dh_b], target [cos theta2, sin theta2, h_f2, h_b2]."""

    name = "rotcolor"

    def __init__(self, factors: Mapping[str, Sequence[int]]):
        self.factors = ActionFactors(factors)
        # the paper's env_ratio [rot .5, color .5, rot+color 0]
        self.default_env_ratio = {"rot": 0.5, "color": 0.5}
        self.eval_envs = [*self.factors.columns, NONE]

    def pairs(self, x: torch.Tensor, g: torch.Generator) -> Pairs:
        first, second = (draw_view_params((x.shape[0],), g, x.device) for _ in range(2))
        return Pairs(render(x, **first), render(x, **second), relative_action(first, second), absolute_params(second))


class SensitiveAttributeWorld:
    """Rows [N, D] (raw scale, the sensitive column 0/1): two SCARF corruptions that leave the
    sensitive column alone, then the second copy's attribute flipped with probability
    ``flip_prob``; action [s2 - s1], target [s2]."""

    name = "sensitive"

    def __init__(self, groups: Sequence[Sequence[int]], column: int, attribute: str,
                 corruption_rate: float = 0.6, flip_prob: float = 0.5):
        if not 0 <= flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.groups = [tuple(gr) for gr in groups if not gr[0] <= column < gr[1]]
        self.column, self.attribute = column, attribute
        self.corruption_rate, self.flip_prob = corruption_rate, flip_prob
        self.factors = ActionFactors({attribute: (0, 1)})
        self.default_env_ratio = {attribute: 0.5, NONE: 0.5}
        self.eval_envs = [attribute, NONE]

    def pairs(self, x: torch.Tensor, g: torch.Generator) -> Pairs:
        first = corrupt_features(x, self.groups, self.corruption_rate, g)
        second = corrupt_features(x, self.groups, self.corruption_rate, g)
        flip = torch.rand(x.shape[0], generator=g, device=x.device) < self.flip_prob
        s1 = x[:, self.column]
        s2 = torch.where(flip, 1 - s1, s1)
        second[:, self.column] = s2
        return Pairs(first, second, (s2 - s1).unsqueeze(1), s2.unsqueeze(1))


def world_for(info: Mapping, corruption_rate: float = 0.6, flip_prob: float = 0.5):
    """The world of a dataset, from the facts its builder records in ``info``."""
    if "action_factors" in info:
        return RotColorWorld(info["action_factors"])
    if "sensitive_column" in info:
        return SensitiveAttributeWorld(info["feature_groups"], int(info["sensitive_column"]), info["sensitive"],
                                       corruption_rate, flip_prob)
    raise ValueError("this method needs data whose transformations are known: data.name=rotcolor-mnist (rotation "
                     "and colour) or data.name=adult (the sensitive attribute sex)")
