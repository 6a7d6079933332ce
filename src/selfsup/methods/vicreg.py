"""VICReg (Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.vicreg import check_coefficients, vicreg_terms
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead


@dataclass
class VICRegParams(Params):
    sim_coeff: float = 25.0  # lambda, invariance
    std_coeff: float = 25.0  # mu, variance
    cov_coeff: float = 1.0  # nu, covariance
    proj_hidden_dim: int = 8192  # expander: 3 linear layers of 8192, BN + ReLU between
    proj_dim: int = 8192


class VICReg(TwoViewMethod):
    """Two views, encoder + expander; loss: invariance (MSE between the views' embeddings),
    variance (hinge on each dimension's std) and covariance (off-diagonal covariances) over the
    batch gathered from every process (:func:`selfsup.losses.vicreg.vicreg_loss`)."""

    Params = VICRegParams

    def __init__(self, params: VICRegParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_coefficients(params.sim_coeff, params.std_coeff, params.cov_coeff)
        h = params.proj_hidden_dim
        self.projector = MLPHead([encoder.feature_dim, h, h, params.proj_dim])  # the paper's "expander"

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        p, n = self.params, views[0].shape[0]
        features, z = self.encode_pair(views)
        invariance, variance, covariance = vicreg_terms(z[:n], z[n:], gather_distributed=True)
        loss = p.sim_coeff * invariance + p.std_coeff * variance + p.cov_coeff * covariance
        return {"loss": loss, "features": features[:n], "embeddings": z[:n], "loss_invariance": invariance.detach(),
                "loss_variance": variance.detach(), "loss_covariance": covariance.detach()}
