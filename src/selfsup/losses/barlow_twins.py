"""Barlow Twins: the cross-correlation of two views' embeddings pushed to the identity."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.core.distributed import all_reduce_mean
from selfsup.losses.nt_xent import check_pair
from selfsup.losses.precision import float32_compute


def check_positive(value: float, name: str) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def batch_standardize(z: torch.Tensor, eps: float, gather_distributed: bool) -> torch.Tensor:
    """Each dimension of z [n, d] minus its batch mean, over sqrt(biased batch variance + eps)
    (an affine-free BatchNorm in training mode); with ``gather_distributed`` the mean and
    variance are those of the whole batch over every process (autograd-aware all-reduce)."""
    reduce = all_reduce_mean if gather_distributed else (lambda t: t)
    centred = z - reduce(z.mean(0))
    return centred / torch.sqrt(reduce(centred.pow(2).mean(0)) + eps)


@float32_compute
def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5, gather_distributed: bool = False) -> torch.Tensor:
    """C [d, d] with C_ij = mean_b a_bi c_bj, where a and c are z1 and z2 standardised per
    dimension over the batch (Zbontar et al. 2021, eq. 2). Computed in float32 at least, with
    autocast off (:func:`~selfsup.losses.precision.float32_compute`), so the loss is float32
    under bf16 mixed precision."""
    a = batch_standardize(z1, eps, gather_distributed)
    c = batch_standardize(z2, eps, gather_distributed)
    corr = a.T @ c / a.shape[0]
    return all_reduce_mean(corr) if gather_distributed else corr


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lambda_offdiag: float = 5e-3,
    eps: float = 1e-5,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised
    Learning via Redundancy Reduction", ICML 2021, eq. 1):

        L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2

    with C the cross-correlation of :func:`cross_correlation`, lambda = 5e-3 (the paper's).
    z1, z2: [N, d] projections of the two views.

    Distributed semantics: statistics are all-reduced, embeddings are not gathered. The
    per-dimension means and variances and then C itself are averaged over processes with an
    autograd-aware all-reduce (equal per-process batches), so every process computes the loss
    of the whole batch; the backward of the all-reduce averages the gradient of the statistic
    over processes, so after DDP's averaging the gradients equal one process with the whole
    batch (a two-process test checks this: a summing backward would make them world_size
    times too large).

    >>> z1, z2 = torch.randn(32, 64), torch.randn(32, 64)
    >>> barlow_twins_loss(z1, z2).shape
    torch.Size([])
    """
    check_pair(z1, z2)
    check_positive(lambda_offdiag, "lambda_offdiag")
    check_positive(eps, "eps")
    if z1.shape[0] < 2:
        raise ValueError(f"Barlow Twins standardises over the batch and needs at least 2 samples, got {z1.shape[0]}")
    c = cross_correlation(z1, z2, eps, gather_distributed)
    on_diag = torch.diagonal(c)
    off_diag_sq = c.pow(2).sum() - on_diag.pow(2).sum()
    return (1 - on_diag).pow(2).sum() + lambda_offdiag * off_diag_sq


class BarlowTwinsLoss(nn.Module):
    """Module form of :func:`barlow_twins_loss`: ``BarlowTwinsLoss(lambda_offdiag=5e-3)(z1, z2)``."""

    def __init__(self, lambda_offdiag: float = 5e-3, eps: float = 1e-5, gather_distributed: bool = False):
        super().__init__()
        check_positive(lambda_offdiag, "lambda_offdiag")
        check_positive(eps, "eps")
        self.lambda_offdiag, self.eps, self.gather_distributed = lambda_offdiag, eps, gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins_loss(z1, z2, self.lambda_offdiag, self.eps, self.gather_distributed)
