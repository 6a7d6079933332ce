"""What the classic pretext methods share: a pretext classifier with its loss and accuracy,
and, for the patch tasks (relative patch position, jigsaw), their grid and an encoder that
represents a whole image by the average of its 3x3 patch features."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from selfsup.augment.patches import PatchGrid, crop_patches, standardize_patches
from selfsup.models.encoders import Encoder, InputSpec
from selfsup.models.heads import MLPHead


def pretext_head(in_dim: int, hidden_dim: int, classes: int) -> MLPHead:
    """The pretext classifier: linear (``hidden_dim`` 0) or one hidden layer with BN and ReLU."""
    if hidden_dim < 0:
        raise ValueError(f"method.head_hidden_dim must be >= 0 (0 = linear), got {hidden_dim}")
    return MLPHead([in_dim, classes] if hidden_dim == 0 else [in_dim, hidden_dim, classes])


def classification(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of a pretext classifier and its accuracy (logged as train/pretext_top1)."""
    return {"loss": F.cross_entropy(logits, targets),
            "pretext_top1": (logits.detach().argmax(1) == targets).float().mean()}


def grid_for(spec: InputSpec, default: Callable[[int], PatchGrid], patch_size: Optional[int],
             gap: Optional[int], jitter: Optional[int]) -> PatchGrid:
    """The grid derived from the image size by ``default``, with any of the three values
    set explicitly (``method.patch_size`` / ``method.gap`` / ``method.jitter``) replacing its own.
    Checked against the image size here, so a bad choice fails before training starts."""
    if spec.kind != "image" or len(spec.input_shape) != 3:
        raise ValueError(f"patch-based pretext tasks need images [C, H, W], got {spec.kind} {spec.input_shape}")
    height, width = spec.input_shape[-2:]
    derived = default(min(height, width))
    grid = PatchGrid(
        derived.patch if patch_size is None else patch_size,
        derived.gap if gap is None else gap,
        derived.jitter if jitter is None else jitter,
    )
    grid.check_fits(height, width)
    return grid


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
