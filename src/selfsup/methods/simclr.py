"""SimCLR (Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses import nt_xent
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, SimCLRProjectionHead


@dataclass
class SimCLRParams(Params):
    temperature: float = 0.5  # the paper's CIFAR-10 value (0.1 on ImageNet with large batches)
    proj_hidden_dim: int = 2048
    proj_dim: int = 128


class SimCLR(TwoViewMethod):
    """Two SimCLR views per image, encoder + projection head, NT-Xent over the batch with the
    negatives gathered from every process."""

    global_batchnorm = True  # global BN in the projector (Chen et al. 2020, sec. 2.2: BN over all devices)

    Params = SimCLRParams

    def __init__(self, params: SimCLRParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        self.projector = SimCLRProjectionHead(encoder.feature_dim, params.proj_hidden_dim, params.proj_dim)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        loss = nt_xent(z[:n], z[n:], self.params.temperature, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
