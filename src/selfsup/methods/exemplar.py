"""Exemplar (Dosovitskiy, Springenberg, Riedmiller, Brox, "Discriminative Unsupervised Feature
Learning with Convolutional Neural Networks", NIPS 2014), in the triplet-loss form of
Kolesnikov, Zhai, Beyer ("Revisiting Self-Supervised Visual Representation Learning", CVPR 2019)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfsup.augment.exemplar import ExemplarViews
from selfsup.core.distributed import rank
from selfsup.losses import triplet_loss
from selfsup.losses.triplet import MINING
from selfsup.methods.base import Method, MethodContext, Params, ViewRequirement
from selfsup.models import Encoder, MLPHead


@dataclass
class ExemplarParams(Params):
    mining: str = "semi-hard"  # Kolesnikov et al.'s triplet_semihard_loss; or "batch-hard"
    margin: float = 0.5  # Kolesnikov et al.
    degrees: float = 20.0  # random rotation within +-20 degrees (Dosovitskiy et al.)
    embed_dim: int = 128  # Kolesnikov et al.: a 1000-d embedding
    head_hidden_dim: int = 0  # 0: a linear embedding head


class Exemplar(Method):
    """``augment.num_views`` heavy augmentations of every image (:class:`ExemplarViews`): each
    image is its own class. Encoder + embedding head, rows L2-normalised (the paper's code
    normalises along the batch axis, a quirk we do not copy), triplet loss with in-batch
    mining over the squared Euclidean distances, negatives gathered from every process."""

    Params = ExemplarParams
    view_requirement = ViewRequirement(("augment.num_views",), 2, reason="each image is a class of its views: the "
                                       "triplet loss needs two views of an image as a positive pair")

    def __init__(self, params: ExemplarParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        if ctx.spec.kind != "image":
            raise ValueError(f"exemplar needs images, got {ctx.spec.kind} data")
        sizes = [encoder.feature_dim, params.embed_dim]
        self.head = MLPHead(sizes if params.head_hidden_dim == 0 else [sizes[0], params.head_hidden_dim, sizes[1]])
        self.views = ExemplarViews(ctx.augment, ctx.augment.num_views, params.degrees)
        if params.mining not in MINING or params.margin < 0:
            raise ValueError(f"method.mining must be one of {MINING} and method.margin >= 0, "
                             f"got {params.mining!r} and {params.margin}")

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        return self.views(x, generator)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features = self.encoder(torch.cat(views))
        z = F.normalize(self.head(features), dim=1)
        # surrogate class = the image: unique across processes, the same for all its views
        images = torch.arange(n, device=z.device).repeat(len(views)) + rank() * n
        loss = triplet_loss(z, images, self.params.margin, self.params.mining, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
