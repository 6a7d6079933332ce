"""The shared shape of the multi-crop methods (DINO, SwAV): a few global crops and several small
local crops of every sample (Caron et al. 2020, sec. 3.2), encoded one resolution at a time."""
from __future__ import annotations

import torch

from selfsup.augment import MultiCropViews
from selfsup.methods.base import Method, MethodContext, Params, ViewRequirement
from selfsup.models import Encoder


class MultiCropMethod(Method):
    """Views: :class:`selfsup.augment.MultiCropViews` of ``augment.*`` (``num_global_crops``
    global crops first, then ``num_local_crops`` local ones). Subclasses encode them with
    :meth:`encode_crops`."""

    view_requirement = ViewRequirement(("augment.num_global_crops", "augment.num_local_crops"), 2, reason=(
        "every crop is matched to the global crops' targets, a crop never to itself: one global crop and "
        "local crops is enough"))

    def __init__(self, params: Params, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        if ctx.spec.kind != "image":
            raise ValueError(f"{type(self).__name__} makes multi-crop views of images, not of {ctx.spec.kind} data")
        self.views = MultiCropViews(ctx.augment)
        self.num_global_crops = ctx.augment.num_global_crops

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        return self.views(x, generator)

    def encode_crops(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Encoder features of every crop, [num_crops * N, d] in crop order; consecutive crops of
        one size pass the encoder together (one pass for the global crops, one for the local)."""
        features, start = [], 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape == crops[start].shape:
                end += 1
            features.append(self.encoder(torch.cat(crops[start:end])))
            start = end
        return torch.cat(features)
