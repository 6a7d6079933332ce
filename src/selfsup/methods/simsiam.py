"""SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.byol import simsiam_loss
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead


@dataclass
class SimSiamParams(Params):
    proj_hidden_dim: int = 2048  # projector: 3 layers of 2048, BN on each, the output's affine-free
    proj_dim: int = 2048
    pred_hidden_dim: int = 512  # predictor: 2048 -> 512 (BN, ReLU) -> 2048, a bottleneck


class SimSiam(TwoViewMethod):
    """One network (encoder + projector) on both views, a predictor on top; loss: the symmetrised
    negative cosine between each view's prediction and the other view's projection with the
    gradient stopped (no negatives, no momentum encoder, no communication across processes)."""

    global_batchnorm = True  # BN in the projector and predictor, SyncBN in the paper's setup (Chen & He 2021)

    Params = SimSiamParams

    def __init__(self, params: SimSiamParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        h = params.proj_hidden_dim
        self.projector = MLPHead([encoder.feature_dim, h, h, params.proj_dim], last_bn=True)
        self.predictor = MLPHead([params.proj_dim, params.pred_hidden_dim, params.proj_dim])

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        p = self.predictor(z)
        loss = simsiam_loss(p[:n], p[n:], z[:n], z[n:])
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
