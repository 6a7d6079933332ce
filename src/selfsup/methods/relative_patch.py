"""Relative patch position (Doersch, Gupta, Efros, "Unsupervised Visual Representation Learning
by Context Prediction", ICCV 2015)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from selfsup.augment.patches import relative_patch_pairs
from selfsup.core.patches import NEIGHBOUR_OFFSETS, doersch_grid
from selfsup.methods.base import Method, MethodContext, Params, ViewColumn
from selfsup.methods.pretext import classification, eval_grid, grid_for, pretext_head
from selfsup.models import Encoder, PatchGridEncoder


@dataclass
class RelativePatchParams(Params):
    # None: derived from the image size in Doersch's proportions (28 px: patch 6, gap 3, jitter 1)
    patch_size: Optional[int] = None
    gap: Optional[int] = None
    jitter: Optional[int] = None
    pairs_per_image: int = 1  # 1: one random neighbour (Doersch); 8: all of them (Kolesnikov et al.)
    drop_colour: bool = True  # colour images: keep one channel per patch (the chromatic-aberration defence)
    head_hidden_dim: int = 512  # the paper's fc7 has 4096 units
    # evaluation's patches: central (a gapless 3x3 tiling of the central crop, Kolesnikov et al. 2019)
    # or training (the training grid without jitter, its gaps kept)
    eval_tiling: str = "central"


class RelativePatch(Method):
    """The centre patch of a 3x3 grid and one of its 8 neighbours, each jittered and
    standardised, through a shared (siamese) encoder; the two feature vectors concatenated feed
    an 8-way classifier of the neighbour's position. Evaluation represents an image by the mean
    feature of 9 patches (:class:`PatchGridEncoder`): by default a gapless 3x3 tiling of the
    central crop (``method.eval_tiling``), not the training grid."""

    Params = RelativePatchParams

    def __init__(self, params: RelativePatchParams, encoder: Encoder, ctx: MethodContext):
        grid = grid_for(ctx.spec, doersch_grid, params.patch_size, params.gap, params.jitter)
        super().__init__(params, PatchGridEncoder(encoder, eval_grid(ctx.spec, grid, params.eval_tiling)), ctx)
        if not 1 <= params.pairs_per_image <= len(NEIGHBOUR_OFFSETS):
            raise ValueError(f"method.pairs_per_image must be in 1..8, got {params.pairs_per_image}")
        self.grid = grid
        self.head = pretext_head(2 * encoder.feature_dim, params.head_hidden_dim, len(NEIGHBOUR_OFFSETS))

    @torch.no_grad()
    def make_views(self, x: torch.Tensor, generator: torch.Generator):
        k = self.params.pairs_per_image
        if k == 1:
            positions = None  # drawn per image
        else:  # k distinct positions per image
            order = torch.rand(x.shape[0], len(NEIGHBOUR_OFFSETS), generator=generator, device=x.device).argsort(1)
            positions = order[:, :k].flatten()
            x = x.repeat_interleave(k, dim=0)
        return relative_patch_pairs(x, generator, self.grid, positions, drop_colour=self.params.drop_colour)

    def view_columns(self, x: torch.Tensor, views) -> list[ViewColumn]:
        """Each image's first pair: the centre patch and the neighbour, captioned with its
        position class and its (row, column) offset from the centre."""
        centre, neighbour, positions = (v[:: self.params.pairs_per_image] for v in views)
        captions = [f"class {int(p)} {NEIGHBOUR_OFFSETS[int(p)]}" for p in positions]
        return [ViewColumn("centre", centre), ViewColumn("neighbour", neighbour, captions)]

    def loss(self, views, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        centre, neighbour, positions = views
        m = centre.shape[0]
        features = self.encoder.encode_patches(torch.cat([centre, neighbour]))
        out = classification(self.head(torch.cat([features[:m], features[m:]], dim=1)), positions)
        # per image: the mean feature of all its patches, as the evaluation sees it
        per_image = torch.stack([features[:m], features[m:]], 1).view(len(labels), -1, features.shape[1]).mean(1)
        return {**out, "features": per_image}
