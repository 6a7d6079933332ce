"""MoCo v3 (Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers",
ICCV 2021, arXiv 2104.02057): the query of each view (encoder, projector, predictor) against
the momentum key of the other, with the keys of the batch as negatives (no queue).

The paper's ViT defaults: temperature 0.2 (1.0 for ResNet-50), a 3-layer projector (hidden
4096, output 256, BatchNorm on every layer, the output's without affine), a 2-layer predictor
(hidden 4096), momentum 0.99 rising to 1 along a cosine, and the stability trick of sec. 5: a
random patch projection kept frozen. The optimiser side (AdamW, lr 1.5e-4 x batch / 256, weight
decay 0.1, warm-up 40 epochs) is the recipe's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses import mocov3_loss
from selfsup.losses.infonce import check_temperature
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead, MomentumNetwork
from selfsup.models.momentum import check_momentum, scheduled_momentum


@dataclass
class MoCoV3Params(Params):
    temperature: float = 0.2  # tau (the paper's ViT value; 1.0 for ResNet-50)
    momentum: float = 0.99  # m_base of the momentum encoder's EMA
    momentum_cosine: bool = True  # m rises from m_base to 1 along a cosine
    proj_hidden_dim: int = 4096  # projector: 3 layers, BN on each (the output's affine-free)
    proj_dim: int = 256  # the space of queries and keys
    pred_hidden_dim: int = 4096  # predictor: proj_dim -> hidden (BN, ReLU) -> proj_dim
    freeze_patch_embed: bool = True  # ViTs: keep the random patch projection frozen (sec. 5); other encoders have none


class MoCoV3(TwoViewMethod):
    """Queries: encoder, projector and predictor on both views. Keys: a momentum (EMA) copy of
    encoder and projector on both views, updated after every optimiser step. Loss:
    :func:`selfsup.losses.mocov3_loss`, ctr(q1, k2) + ctr(q2, k1), the keys of every process
    gathered as negatives. With a ViT (``model.encoder=vit-*``) and ``freeze_patch_embed`` the
    patch projection keeps its random init; encoders without a patch projection ignore it.

    ``features``: the encoder's features of view 1; ``embeddings``: its queries."""

    global_batchnorm = True  # BN in the projector and predictor, synchronised across devices (Chen, Xie, He 2021)

    Params = MoCoV3Params

    def __init__(self, params: MoCoV3Params, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_temperature(params.temperature)
        check_momentum(params.momentum)
        if params.freeze_patch_embed and hasattr(encoder.backbone, "freeze_patch_embed"):
            encoder.backbone.freeze_patch_embed()
        h = params.proj_hidden_dim
        self.projector = MLPHead([encoder.feature_dim, h, h, params.proj_dim], last_bn=True)
        self.predictor = MLPHead([params.proj_dim, params.pred_hidden_dim, params.proj_dim])
        self.target = MomentumNetwork(self.encoder, self.projector)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        q = self.predictor(z)
        k = self.target(torch.cat(views[:2]))
        loss = mocov3_loss(q[:n], q[n:], k[:n], k[n:], self.params.temperature, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": q[:n]}

    def after_optimizer_step(self, progress: float) -> None:
        m = scheduled_momentum(self.params.momentum, progress, self.params.momentum_cosine)
        self.target.update([self.encoder, self.projector], m)
