"""Multi-view pipelines: several independently augmented views of each sample in a batch."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.augment import ops
from selfsup.config.schema import AugmentConfig


class SimCLRViews(nn.Module):
    """The SimCLR augmentation (Chen et al. 2020, appendix A) on a batch: random resized crop,
    horizontal flip, colour jitter (p=0.8; brightness, contrast, saturation 0.8*s, hue 0.2*s
    with strength s = 0.5 at CIFAR scale), random greyscale (p=0.2), Gaussian blur (kernel 10 %
    of the image side). Greyscale images get brightness and contrast only.

    ``forward(x, g)``: x float [N, C, H, W] in 0..1 -> list of ``num_views`` tensors of the
    same shape, each with its own per-sample random parameters."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        self.cfg = cfg

    def view(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c, s = self.cfg, self.cfg.jitter_strength
        x = ops.random_resized_crop(x, g, tuple(c.crop_scale), tuple(c.crop_ratio), c.hflip_prob)
        x = ops.color_jitter(x, g, c.jitter_prob, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
        x = ops.random_grayscale(x, g, c.grayscale_prob)
        return ops.gaussian_blur(x, g, c.blur_prob, tuple(c.blur_sigma))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        return [self.view(x, g) for _ in range(self.cfg.num_views)]
