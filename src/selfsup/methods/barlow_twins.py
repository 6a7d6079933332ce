"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.barlow_twins import barlow_twins_loss, check_positive
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead


@dataclass
class BarlowTwinsParams(Params):
    lambda_offdiag: float = 5e-3  # weight of the redundancy-reduction term
    proj_hidden_dim: int = 8192  # projector: 3 linear layers of 8192, BN + ReLU between
    proj_dim: int = 8192


class BarlowTwins(TwoViewMethod):
    """Two views, encoder + projector; loss: the cross-correlation matrix of the two views'
    batch-standardised projections pushed to the identity, with the batch statistics
    all-reduced across processes (:func:`selfsup.losses.barlow_twins.barlow_twins_loss`)."""

    global_batchnorm = True  # its cross-correlation of batch-normalised embeddings is a batch statistic (Zbontar 2021)

    Params = BarlowTwinsParams

    def __init__(self, params: BarlowTwinsParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_positive(params.lambda_offdiag, "method.lambda_offdiag")
        h = params.proj_hidden_dim
        self.projector = MLPHead([encoder.feature_dim, h, h, params.proj_dim])

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        loss = barlow_twins_loss(z[:n], z[n:], self.params.lambda_offdiag, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
