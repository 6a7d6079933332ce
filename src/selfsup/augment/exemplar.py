"""Exemplar surrogate classes (Dosovitskiy, Springenberg, Riedmiller, Brox, "Discriminative
Unsupervised Feature Learning with Convolutional Neural Networks", NIPS 2014): every image is
its own class, represented by several heavily augmented copies of it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ops
from selfsup.augment.views import SimCLRViews
from selfsup.config.schema import AugmentConfig


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by ``degrees[i]`` (positive = counter-clockwise as
    displayed); bilinear, reflection padding, one resampling for the whole batch. Angles are
    taken in pixel space, so non-square images are not sheared."""
    n, _, h, w = x.shape
    angle = torch.deg2rad(degrees.to(device=x.device, dtype=x.dtype))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # output pixel (u, v) samples the input at R(-angle) (u, v) with v pointing down; normalised
    # coordinates scale u by 2/w and v by 2/h, hence the aspect factors off the diagonal
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * (h / w)
    theta[:, 1, 0], theta[:, 1, 1] = sin * (w / h), cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_rotation(x: torch.Tensor, g: torch.Generator, degrees: float) -> torch.Tensor:
    """:func:`rotate` by an angle ~ U[-degrees, degrees] drawn per sample."""
    if degrees <= 0:
        return x
    return rotate(x, ops.uniform(x.shape[0], -degrees, degrees, g, x.device))


class ExemplarViews(nn.Module):
    """``num_views`` heavy augmentations of every image: the SimCLR pipeline of the ``augment``
    config (random resized crop = translation and scaling, flip, colour jitter = contrast and
    colour changes, greyscale, blur; the "inception crops" of Kolesnikov et al. 2019's exemplar)
    followed by Dosovitskiy et al.'s random rotation within +-``degrees`` (20 in the paper).

    ``forward(x, g)``: x float [N, C, H, W] in 0..1 -> list of ``num_views`` tensors [N, C, H, W]."""

    def __init__(self, cfg: AugmentConfig, num_views: int = 8, degrees: float = 20.0):
        super().__init__()
        if num_views < 2:
            raise ValueError(f"exemplar needs at least 2 views per image (augment.num_views), got {num_views}")
        if not 0 <= degrees <= 180:
            raise ValueError(f"rotation degrees must be in [0, 180], got {degrees}")
        self.pipeline = SimCLRViews(cfg)
        self.num_views = num_views
        self.degrees = degrees

    @torch.no_grad()
    def forward(self, x: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        return [random_rotation(self.pipeline.view(x, g), g, self.degrees) for _ in range(self.num_views)]
