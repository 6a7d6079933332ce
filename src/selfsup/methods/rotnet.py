"""RotNet (Gidaris, Singh, Komodakis, "Unsupervised Representation Learning by Predicting Image
Rotations", ICLR 2018)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch

from selfsup.augment import ops
from selfsup.augment.rotation import ROTATION_DEGREES, rotation_batch
from selfsup.methods.base import Method, MethodContext, Params, ViewColumn
from selfsup.methods.pretext import classification, pretext_head
from selfsup.models import Encoder


@dataclass
class RotNetParams(Params):
    head_hidden_dim: int = 0  # 0: a linear 4-way classifier on the features (Kolesnikov et al. 2019)
    # light augmentation before rotating (the paper's CIFAR setup: random crops and flips): square
    # crops of this area fraction, resized back
    crop_scale: List[float] = field(default_factory=lambda: [0.7, 1.0])
    hflip_prob: float = 0.5


class RotNet(Method):
    """Every image of the batch in all four rotations (0, 90, 180, 270 degrees), a shared
    encoder and a 4-way classifier of the rotation, cross-entropy over all 4N images."""

    Params = RotNetParams

    def __init__(self, params: RotNetParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        shape = ctx.spec.input_shape
        if ctx.spec.kind != "image" or shape[-1] != shape[-2]:
            raise ValueError(f"rotnet needs square images, got {ctx.spec.kind} {shape}: set data.image_size")
        self.head = pretext_head(encoder.feature_dim, params.head_hidden_dim, len(ROTATION_DEGREES))

    @torch.no_grad()
    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        x = ops.random_resized_crop(x, generator, tuple(p.crop_scale), (1.0, 1.0), p.hflip_prob)
        return rotation_batch(x)

    def view_columns(self, x: torch.Tensor, views: tuple[torch.Tensor, torch.Tensor]) -> list[ViewColumn]:
        images = views[0].view(len(ROTATION_DEGREES), x.shape[0], *views[0].shape[1:])  # rotation-major
        return [ViewColumn(f"{degrees} deg (class {k})", images[k]) for k, degrees in enumerate(ROTATION_DEGREES)]

    def loss(self, views: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        images, rotations = views
        features = self.encoder(images)
        out = classification(self.head(features), rotations)
        return {**out, "features": features[: len(labels)]}
