"""SupCon on partly labelled data: SimCLR's contrast plus a supervised contrastive term over the
labelled samples (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020; the mixture
as described by fastai self_supervised's SupCon, ../shared/seeds/supcon.txt)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.infonce import check_temperature
from selfsup.losses.supcon import check_unsup_method, supcon_terms
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead


@dataclass
class SupConParams(Params):
    temperature: float = 0.1  # Khosla et al.
    reg_lambda: float = 1.0  # weight of the supervised term (the seed's)
    unsup_class_id: int = -1  # the label of unlabelled samples (the data layer's -1)
    unsup_method: str = "all"  # 'all': every sample in the self-supervised term; 'only': unlabelled ones
    proj_hidden_dim: int = 2048  # Khosla et al.: one hidden layer of 2048, output 128
    proj_dim: int = 128


class SupCon(TwoViewMethod):
    """Two views, encoder + MLP head, L = L_unsup + reg_lambda * L_sup
    (:func:`selfsup.losses.supcon.supcon_terms`) with the candidates gathered from every
    process. Samples labelled ``unsup_class_id`` (train with ``data.labelled_fraction``) are
    unlabelled; with no labels at all the method is SimCLR with SupCon's head and temperature."""

    Params = SupConParams

    def __init__(self, params: SupConParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_temperature(params.temperature)
        check_unsup_method(params.unsup_method)
        self.projector = MLPHead([encoder.feature_dim, params.proj_hidden_dim, params.proj_dim], batch_norm=False)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        p, n = self.params, views[0].shape[0]
        features, z = self.encode_pair(views)
        unsup, sup = supcon_terms(z[:n], z[n:], labels, p.temperature, p.unsup_class_id, p.unsup_method,
                                  gather_distributed=True)
        return {"loss": unsup + p.reg_lambda * sup, "features": features[:n], "embeddings": z[:n],
                "loss_unsup": unsup.detach(), "loss_sup": sup.detach()}
