"""VICReg: variance, invariance and covariance terms on two views' embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses.barlow_twins import check_positive
from selfsup.core.distributed import gather
from selfsup.losses.nt_xent import check_pair


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z) = 1/d sum_j max(0, gamma - sqrt(Var(z_j) + eps)), Var unbiased over the batch."""
    return F.relu(gamma - torch.sqrt(z.var(dim=0) + eps)).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """c(Z) = 1/d sum_{i != j} C(Z)_ij^2, C(Z) the unbiased covariance matrix over the batch."""
    n, d = z.shape
    centred = z - z.mean(0)
    cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def check_coefficients(sim_coeff: float, std_coeff: float, cov_coeff: float) -> None:
    for value, name in ((sim_coeff, "sim_coeff"), (std_coeff, "std_coeff"), (cov_coeff, "cov_coeff")):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4, gather_distributed: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(invariance, variance, covariance) of VICReg: s(Z, Z') = mean over samples and
    dimensions of (z - z')^2; v(Z) + v(Z'); c(Z) + c(Z'). See :func:`vicreg_loss`."""
    check_pair(z1, z2)
    check_positive(eps, "eps")
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    if z1.shape[0] < 2:
        raise ValueError(f"VICReg's variance and covariance need at least 2 samples in the batch, got {z1.shape[0]}")
    invariance = F.mse_loss(z1, z2)
    variance = variance_term(z1, gamma, eps) + variance_term(z2, gamma, eps)
    covariance = covariance_term(z1) + covariance_term(z2)
    return invariance, variance, covariance


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """VICReg (Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
    Self-Supervised Learning", ICLR 2022, eqs. 1-6):

        L = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]

    with lambda = mu = 25, nu = 1, gamma = 1, eps = 1e-4 (the paper's). v is the hinge on the
    per-dimension std, c the sum of squared off-diagonal covariances over d. The invariance
    s is the mean squared error over samples *and dimensions*, as in the authors' released
    code, for which the coefficients were tuned (the paper's eq. 5 does not divide by d).
    The variance term sums the two branches, v(Z) + v(Z'), as the paper's eq. 6 writes it
    (solo-learn does the same); the authors' released code (main_vicreg.py) averages them,
    (v(Z) + v(Z')) / 2, so here the variance term weighs twice as much relative to the other
    two as in the code that produced the paper's results (mu = 25 here acts like mu = 50
    there; pass std_coeff=12.5 to match the released code). The covariance term sums the two
    branches in both.
    z1, z2: [N, d] expander outputs of the two views.

    Distributed semantics: embeddings are gathered (autograd-aware) and every process
    computes the loss of the whole batch. The gather's backward sums what every process's
    (identical) loss sends to this process's rows, world_size times the whole-batch gradient,
    which DDP's averaging brings back to exactly the whole-batch gradient.

    >>> z1, z2 = torch.randn(32, 64), torch.randn(32, 64)
    >>> vicreg_loss(z1, z2).shape
    torch.Size([])
    """
    check_coefficients(sim_coeff, std_coeff, cov_coeff)
    invariance, variance, covariance = vicreg_terms(z1, z2, gamma, eps, gather_distributed)
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


class VICRegLoss(nn.Module):
    """Module form of :func:`vicreg_loss`: ``VICRegLoss()(z1, z2)``."""

    def __init__(self, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0,
                 gamma: float = 1.0, eps: float = 1e-4, gather_distributed: bool = False):
        super().__init__()
        check_coefficients(sim_coeff, std_coeff, cov_coeff)
        check_positive(eps, "eps")
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.gamma, self.eps, self.gather_distributed = gamma, eps, gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_loss(z1, z2, self.sim_coeff, self.std_coeff, self.cov_coeff, self.gamma, self.eps,
                           self.gather_distributed)
