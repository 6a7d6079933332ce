"""Jigsaw puzzles (Noroozi & Favaro, "Unsupervised Learning of Visual Representations by
Solving Jigsaw Puzzles", ECCV 2016)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from selfsup.augment.patches import jigsaw_tiles
from selfsup.core.patches import noroozi_grid
from selfsup.augment.permutations import max_hamming_permutations
from selfsup.methods.base import Method, MethodContext, Params, ViewColumn
from selfsup.methods.pretext import classification, eval_grid, grid_for, pretext_head
from selfsup.models import Encoder, PatchGridEncoder


@dataclass
class JigsawParams(Params):
    num_permutations: int = 100  # the paper uses 1000; Kolesnikov et al. 2019 100
    permutation_criterion: str = "mean"  # greedy by maximal mean Hamming distance (the paper), or "min"
    permutation_seed: int = 0
    # None: derived from the image size in the paper's proportions (28 px: tile 7, gap 2, jitter 1)
    patch_size: Optional[int] = None
    gap: Optional[int] = None
    jitter: Optional[int] = None
    grayscale_prob: float = 0.3  # colour images: the paper's defence against chromatic aberration
    head_hidden_dim: int = 512  # the paper's fc7 has 4096 units
    # evaluation's patches: central (a gapless 3x3 tiling of the central crop, Kolesnikov et al. 2019)
    # or training (the training grid without jitter, its gaps kept)
    eval_tiling: str = "central"


class Jigsaw(Method):
    """The 9 tiles of a 3x3 grid (jittered, standardised) in the order of a permutation drawn
    per image from a fixed set; a shared encoder per tile, the 9 feature vectors concatenated
    in that order feed a classifier of the permutation's index. The set is chosen greedily for
    maximal Hamming distance, seeded, and kept as the buffer ``permutations`` (in every
    checkpoint). Evaluation represents an image by the mean feature of 9 tiles:
    by default a gapless 3x3 tiling of the central crop (``method.eval_tiling``)."""

    Params = JigsawParams

    def __init__(self, params: JigsawParams, encoder: Encoder, ctx: MethodContext):
        grid = grid_for(ctx.spec, noroozi_grid, params.patch_size, params.gap, params.jitter)
        super().__init__(params, PatchGridEncoder(encoder, eval_grid(ctx.spec, grid, params.eval_tiling)), ctx)
        self.grid = grid
        self.register_buffer("permutations", max_hamming_permutations(
            params.num_permutations, params.permutation_seed, params.permutation_criterion))
        self.head = pretext_head(9 * encoder.feature_dim, params.head_hidden_dim, params.num_permutations)

    @torch.no_grad()
    def make_views(self, x: torch.Tensor, generator: torch.Generator):
        return jigsaw_tiles(x, generator, self.grid, self.permutations, grayscale_prob=self.params.grayscale_prob)

    def view_columns(self, x: torch.Tensor, views) -> list[ViewColumn]:
        """The 9 tiles in the order the network sees them; the row's caption is the class (the
        permutation's index in the set)."""
        tiles, permutation_index = views
        captions = [f"permutation {int(k)}" for k in permutation_index]
        return [ViewColumn(f"slot {i}", tiles[:, i], captions if i == 0 else None) for i in range(tiles.shape[1])]

    def loss(self, views, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        tiles, permutation_index = views
        n, _, c, p, _ = tiles.shape
        features = self.encoder.encode_patches(tiles.reshape(n * 9, c, p, p)).view(n, 9, -1)
        out = classification(self.head(features.flatten(1)), permutation_index)
        return {**out, "features": features.mean(dim=1)}
