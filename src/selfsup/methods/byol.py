"""BYOL (Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.byol import byol_loss
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead
from selfsup.models.momentum import MomentumNetwork, check_momentum, scheduled_momentum


@dataclass
class BYOLParams(Params):
    momentum: float = 0.996  # tau_base of the target network's EMA
    momentum_cosine: bool = True  # tau rises from tau_base to 1 along a cosine (the paper's)
    proj_hidden_dim: int = 4096  # projector and predictor: Linear-BN-ReLU-Linear, 4096 -> 256
    proj_dim: int = 256
    pred_hidden_dim: int = 4096


class BYOL(TwoViewMethod):
    """Online network: encoder, projector, predictor. Target network: an EMA copy of encoder and
    projector, updated after every optimiser step. Loss: the symmetrised normalised MSE between
    each view's prediction and the target's projection of the other view (no negatives, no
    communication across processes)."""

    global_batchnorm = True  # BN in projector and predictor over the global batch (Grill et al. 2020, appendix)

    Params = BYOLParams

    def __init__(self, params: BYOLParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_momentum(params.momentum)
        self.projector = MLPHead([encoder.feature_dim, params.proj_hidden_dim, params.proj_dim])
        self.predictor = MLPHead([params.proj_dim, params.pred_hidden_dim, params.proj_dim])
        self.target = MomentumNetwork(self.encoder, self.projector)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        p = self.predictor(z)
        t = self.target(torch.cat(views[:2]))
        loss = byol_loss(p[:n], p[n:], t[:n], t[n:])
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}

    def after_optimizer_step(self, progress: float) -> None:
        m = scheduled_momentum(self.params.momentum, progress, self.params.momentum_cosine)
        self.target.update([self.encoder, self.projector], m)
