"""SimCLR (Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.augment import SimCLRViews
from selfsup.augment.temporal import TemporalPairViews
from selfsup.losses import nt_xent
from selfsup.methods.base import Method, MethodContext, Params, register_method
from selfsup.models import Encoder, SimCLRProjectionHead


@dataclass
class SimCLRParams(Params):
    temperature: float = 0.5  # the paper's CIFAR-10 value (0.1 on ImageNet with large batches)
    proj_hidden_dim: int = 2048
    proj_dim: int = 128


@register_method("simclr")
class SimCLR(Method):
    """Two SimCLR views per image, encoder + projection head, NT-Xent over the batch with the
    negatives gathered from every process."""

    Params = SimCLRParams

    def __init__(self, params: SimCLRParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        self.projector = SimCLRProjectionHead(encoder.feature_dim, params.proj_hidden_dim, params.proj_dim)
        # clips / signals: two same-speed temporal crops with SimPer's invariant augmentations
        self.views = SimCLRViews(ctx.augment) if ctx.spec.kind == "image" else TemporalPairViews()

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        return self.views(x, generator)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features = self.encoder(torch.cat(views[:2]))
        z = self.projector(features)
        loss = nt_xent(z[:n], z[n:], self.params.temperature, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
