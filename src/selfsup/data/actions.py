"""Environments of ContextSSL: which factors of the action the context tells the model about.

An action vector is made of named factors, each a range of columns (for RotColor-MNIST
``{"rot": (0, 2), "color": (2, 4)}``). An environment names the factors it gives, joined by
``+``, or ``none``: ``rot`` zeroes the colour columns, ``color`` the rotation columns,
``rot+color`` keeps both, ``none`` zeroes everything. A factor given in the context's actions
makes the model equivariant to it; a factor withheld makes it invariant (Gupta et al., NeurIPS
2024, sec. 4; the original draws one environment per training step with ``env_ratio`` =
[rot .5, color .5, rot+color 0] on 3DIEBench).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch

NONE = "none"


class ActionFactors:
    """Named column ranges ``{factor: (start, end)}`` of an action vector, contiguous from 0."""

    def __init__(self, columns: Mapping[str, tuple[int, int] | list[int]]):
        self.columns = {name: (int(a), int(b)) for name, (a, b) in columns.items()}
        if not self.columns:
            raise ValueError("an action needs at least one factor")
        if NONE in self.columns or any("+" in name for name in self.columns):
            raise ValueError(f"factor names may not be {NONE!r} or contain '+': {list(self.columns)}")
        edges = sorted(self.columns.values())
        if edges[0][0] != 0 or any(b <= a for a, b in edges) or any(p[1] != q[0] for p, q in zip(edges, edges[1:])):
            raise ValueError(f"factor columns must tile 0..dim without gaps or overlaps, got {self.columns}")
        self.dim = edges[-1][1]

    def factors(self, env: str) -> list[str]:
        """The factors an environment gives (``[]`` for ``none``); unknown names are an error."""
        if env == NONE:
            return []
        names = env.split("+")
        unknown = [n for n in names if n not in self.columns]
        if unknown:
            raise ValueError(f"environment {env!r} names unknown factors {unknown}; factors: "
                             f"{', '.join(self.columns)} (join with '+', or '{NONE}')")
        return names

    def keep(self, env: str, device=None) -> torch.Tensor:
        """float [dim]: 1 on the columns of the factors ``env`` gives, 0 elsewhere."""
        keep = torch.zeros(self.dim, device=device)
        for name in self.factors(env):
            a, b = self.columns[name]
            keep[a:b] = 1
        return keep

    def mask(self, actions: torch.Tensor, env: str) -> torch.Tensor:
        """``actions`` [..., dim] with the columns of withheld factors set to zero."""
        if actions.shape[-1] != self.dim:
            raise ValueError(f"actions have {actions.shape[-1]} columns, the factors {self.columns} need {self.dim}")
        return actions * self.keep(env, actions.device).to(actions.dtype)


def draw_environment(env_ratio: Mapping[str, float], generator: Optional[torch.Generator] = None) -> str:
    """One environment name drawn with probabilities proportional to ``env_ratio``."""
    names = list(env_ratio)
    device = generator.device if generator is not None else None
    weights = torch.tensor([float(env_ratio[n]) for n in names], dtype=torch.float64, device=device)
    if not names or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"env_ratio needs non-negative weights with a positive sum, got {dict(env_ratio)}")
    return names[int(torch.multinomial(weights, 1, generator=generator))]
