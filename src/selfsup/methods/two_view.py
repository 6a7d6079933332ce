"""The shared shape of the two-view methods (SimCLR, MoCo, SupCon, BYOL, SimSiam, Barlow Twins,
VICReg): two augmented views of every sample, encoded and projected in one batched pass."""
from __future__ import annotations

import torch

from selfsup.augment import SimCLRViews
from selfsup.augment.temporal import TemporalPairViews
from selfsup.methods.base import Method, MethodContext, Params, ViewRequirement
from selfsup.models import Encoder


class TwoViewMethod(Method):
    """Views: SimCLR's augmentation for images; for clips and signals, two same-speed temporal
    crops with SimPer's periodicity-invariant augmentations. Subclasses set ``self.projector``
    and use :meth:`encode_pair`."""

    projector: torch.nn.Module
    view_requirement = ViewRequirement(("augment.num_views",), 2, 2, "its loss compares two views of every sample "
                                       "and ignores any more")

    def __init__(self, params: Params, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        self.views = self.build_views(ctx)

    def build_views(self, ctx: MethodContext) -> torch.nn.Module:
        """The hook that makes the views module (a subclass with other views overrides it):
        ``views(x, generator) -> [view 1, view 2]``."""
        if ctx.spec.kind not in ("image", "clip", "signal"):
            raise ValueError(f"{type(self).__name__} makes views of images, clips or signals, not of {ctx.spec.kind} "
                             "data; for table rows use method.name=simclr-pairs (feature-corruption views)")
        return SimCLRViews(ctx.augment) if ctx.spec.kind == "image" else TemporalPairViews()

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        return self.views(x, generator)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder features [N, feature_dim], the embedding the projector takes): here both are
        the encoder's output; SimCLR on sequences projects the pooled clip embedding instead."""
        features = self.encoder(x)
        return features, features

    def encode_pair(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder features, projections) of views 1 and 2 stacked: [2n, d] and [2n, p]."""
        features, embedding = self.embed(torch.cat(views[:2]))
        return features, self.projector(embedding)
