"""Equivariance: how well a relative transformation can be read off a pair of representations.

The protocol of SIE (Garrido, Najman, LeCun, "Self-supervised learning of split invariant
equivariant representations", ICML 2023) as ContextSSL's ``eval_equivariance.py`` runs it: a
probe maps [r(x) || r(x+)] to the parameters of the transformation from x to x+, trained on
pairs of training objects, scored by R^2 on pairs of held-out objects.
"""
from __future__ import annotations

import torch


def pooled_r2(target: torch.Tensor, prediction: torch.Tensor) -> float:
    """R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean(y))^2 with ONE mean over all elements of the
    [N, P] target (ContextSSL's pooled variant, not the average of per-column R^2s)."""
    if target.shape != prediction.shape or target.numel() < 2:
        raise ValueError(f"target {tuple(target.shape)} and prediction {tuple(prediction.shape)} must match, "
                         "with at least 2 elements")
    y, y_hat = target.double(), prediction.double()
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - y_hat) ** 2).sum() / total.clamp_min(1e-12))


RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class RidgeProbe:
    """Ridge regression x -> y in closed form on standardised inputs, optionally on
    ``random_features`` seeded random ReLU features of them (a nonlinear probe: relu(z W + b),
    W ~ N(0, 1/d), b ~ N(0, 1)) instead of a trained MLP: deterministic, and seconds on a busy CPU.

    beta = (H^T H + ridge * n * I)^-1 H^T y, with H the (features, 1) matrix, in float64. The
    ridge is chosen among ``ridges`` by the error on the last ``validation`` fraction of the rows
    (callers order rows by object, so that part holds other objects), then refitted on all rows.
    Columns that are (nearly) constant on the training rows are dropped: standardised, they would
    blow up on new rows."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, random_features: int = 0, ridges=RIDGES,
                 validation: float = 0.2, seed: int = 0):
        if x.dim() != 2 or y.dim() != 2 or len(x) != len(y):
            raise ValueError(f"x [N, d] and y [N, p] with the same N expected, got {tuple(x.shape)} and {tuple(y.shape)}")
        x, y = x.double(), y.double()
        self.mean, std = x.mean(0), x.std(0)
        self.scale = torch.where(std > 1e-3 * std.max().clamp_min(1e-12), 1 / std, torch.zeros_like(std))
        self.projection = None
        if random_features:
            g = torch.Generator().manual_seed(seed)
            self.projection = (torch.randn(x.shape[1], random_features, generator=g, dtype=torch.float64)
                               / x.shape[1] ** 0.5, torch.randn(random_features, generator=g, dtype=torch.float64))
        h = self.design(x)
        fit = len(h) - int(validation * len(h))
        if len(ridges) > 1 and 0 < fit < len(h):
            errors = [((h[fit:] @ self.solve(h[:fit], y[:fit], r) - y[fit:]) ** 2).mean() for r in ridges]
            ridges = [ridges[int(torch.stack(errors).argmin())]]
        self.ridge = ridges[0]
        self.beta = self.solve(h, y, self.ridge)

    @staticmethod
    def solve(h: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
        gram = h.T @ h + ridge * len(h) * torch.eye(h.shape[1], dtype=torch.float64)
        return torch.linalg.solve(gram, h.T @ y)

    def design(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.double() - self.mean) * self.scale
        if self.projection is not None:
            z = torch.relu(z @ self.projection[0] + self.projection[1])
        return torch.cat([z, torch.ones(len(z), 1, dtype=torch.float64)], dim=1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (self.design(x) @ self.beta).float()
