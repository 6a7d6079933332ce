"""Multi-view pipelines: several independently augmented views of each sample in a batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from selfsup.augment import ops
from selfsup.config.loading import ConfigError
from selfsup.config.schema import AugmentConfig


@dataclass(frozen=True)
class ViewSettings:
    """The settings one view may have of its own (``augment.view_*``)."""

    blur_prob: float
    solarize_prob: float


def per_view_values(values: Optional[Sequence[float]], shared: float, num_views: int, key: str) -> list[float]:
    """``values[i]`` for view i, ``shared`` for the views past the end of ``values`` (all of
    them when None); ``key`` names the config key in errors."""
    values = [] if values is None else [float(v) for v in values]
    if len(values) > num_views:
        raise ConfigError(f"augment.{key} has {len(values)} values but there are {num_views} views: "
                          "give at most one value per view")
    out = values + [float(shared)] * (num_views - len(values))
    if any(not 0 <= v <= 1 for v in out):
        raise ConfigError(f"augment.{key} (or its shared value) must hold probabilities in [0, 1], got {out}")
    return out


def view_settings(cfg: AugmentConfig, num_views: int) -> list[ViewSettings]:
    """The settings of each of ``num_views`` views: per-view overrides, else the shared values."""
    blur = per_view_values(cfg.view_blur_prob, cfg.blur_prob, num_views, "view_blur_prob")
    solarize = per_view_values(cfg.view_solarize_prob, cfg.solarize_prob, num_views, "view_solarize_prob")
    return [ViewSettings(b, s) for b, s in zip(blur, solarize)]


def photometric(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig, settings: ViewSettings) -> torch.Tensor:
    """Colour jitter (p = ``jitter_prob``; brightness, contrast, saturation 0.8*s, hue 0.2*s at
    strength s), random greyscale, Gaussian blur, then solarisation, each with per-sample
    random parameters; blur and solarisation with the view's own probabilities."""
    s = cfg.jitter_strength
    x = ops.color_jitter(x, g, cfg.jitter_prob, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    x = ops.random_grayscale(x, g, cfg.grayscale_prob)
    x = ops.gaussian_blur(x, g, settings.blur_prob, tuple(cfg.blur_sigma))
    return ops.solarize(x, g, settings.solarize_prob)


class SimCLRViews(nn.Module):
    """The SimCLR augmentation (Chen et al. 2020, appendix A) on a batch: random resized crop,
    horizontal flip, colour jitter (p=0.8; brightness, contrast, saturation 0.8*s, hue 0.2*s
    with strength s = 0.5 at CIFAR scale), random greyscale (p=0.2), Gaussian blur (kernel 10 %
    of the image side), and solarisation (BYOL; off by default). Greyscale images get brightness
    and contrast only. Blur and solarisation may differ per view (``augment.view_blur_prob``,
    ``augment.view_solarize_prob``: BYOL's asymmetric views).

    ``forward(x, g)``: x float [N, C, H, W] in 0..1 -> list of ``num_views`` tensors of the
    same shape, each with its own per-sample random parameters."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        self.cfg = cfg
        self.settings = view_settings(cfg, cfg.num_views)

    def view(self, x: torch.Tensor, g: torch.Generator, index: int = 0) -> torch.Tensor:
        """View number ``index`` (its per-view settings) of the batch."""
        c = self.cfg
        x = ops.random_resized_crop(x, g, tuple(c.crop_scale), tuple(c.crop_ratio), c.hflip_prob)
        return photometric(x, g, c, self.settings[index])

    @torch.no_grad()
    def forward(self, x: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        return [self.view(x, g, i) for i in range(self.cfg.num_views)]
