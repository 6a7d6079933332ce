"""Projection and prediction heads: one generic MLP, each method's head a thin configuration."""
from __future__ import annotations

from typing import Sequence

from torch import nn


class MLPHead(nn.Module):
    """Linear layers of the given sizes; between them BatchNorm (optional) and ReLU.

    ``MLPHead([512, 2048, 128])`` is Linear(512, 2048)-BN-ReLU-Linear(2048, 128).
    ``last_bn`` adds an affine-free BatchNorm after the output (SimSiam's projector)."""

    def __init__(self, sizes: Sequence[int], batch_norm: bool = True, last_bn: bool = False):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP head needs at least input and output sizes, got {list(sizes)}")
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == len(sizes) - 2
            layers.append(nn.Linear(a, b, bias=not (batch_norm and not last)))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(nn.ReLU(inplace=True))
        if last_bn:
            layers.append(nn.BatchNorm1d(sizes[-1], affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = sizes[-1]

    def forward(self, x):
        return self.net(x)


class SimCLRProjectionHead(MLPHead):
    """SimCLR (Chen et al. 2020): Linear-BN-ReLU-Linear, to a 128-d space."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([in_dim, hidden_dim, out_dim])
