"""Whole-image features of a backbone trained on patches (relative patch position, jigsaw)."""
from __future__ import annotations

import torch

from selfsup.core.patches import PatchGrid, crop_patches, standardize_patches
from selfsup.models.encoders import Encoder


class PatchGridEncoder(Encoder):
    """An :class:`Encoder` whose features for a whole image are the mean of the backbone's
    features of the 9 grid patches (no jitter), each standardised as in training: the
    evaluation of patch-based models in Kolesnikov et al. 2019 ("Revisiting Self-Supervised
    Visual Representation Learning", sec. 3: 3x3 patches, averaged). Same parameters and
    buffers as the wrapped encoder (a checkpoint of either loads into the other)."""

    def __init__(self, encoder: Encoder, grid: PatchGrid):
        super().__init__(encoder.backbone, encoder.mean.flatten().tolist(), encoder.std.flatten().tolist(), encoder.kind)
        self.grid = PatchGrid(grid.patch, grid.gap, jitter=0)

    def encode_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Backbone features of already standardised patches [M, C, P, P] -> [M, feature_dim]."""
        return self.backbone(patches)

    def grid_patches(self, x: torch.Tensor) -> torch.Tensor:
        """The 9 standardised grid patches of every image: [N, C, H, W] -> [9N, C, P, P], image-major."""
        n, c, h, w = x.shape
        corners = self.grid.nominal_corners(h, w).to(x.device).expand(n, -1, -1)
        patches = standardize_patches(crop_patches(x, corners, self.grid.patch))
        return patches.reshape(n * 9, c, self.grid.patch, self.grid.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_patches(self.grid_patches(x)).view(x.shape[0], 9, -1).mean(dim=1)

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each stage's feature maps averaged over the 9 patches: [N, C_s, h_s, w_s] (their
        global average pool is the mean of the patches' pooled features)."""
        if not hasattr(self.backbone, "forward_stages"):
            raise ValueError(f"encoder {type(self.backbone).__name__} does not expose its stages for per-layer probing")
        stages = self.backbone.forward_stages(self.grid_patches(x))
        return {name: m.view(x.shape[0], 9, *m.shape[1:]).mean(dim=1) for name, m in stages.items()}
