"""Multi-crop views (Caron et al., "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments" (SwAV), NeurIPS 2020, sec. 3.2; used by DINO, Caron et al. ICCV 2021): a few
global crops covering much of the image at full resolution and several small, low-resolution
local crops, so a model learns to match local to global views at little extra compute."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.augment import ops
from selfsup.augment.views import photometric, view_settings
from selfsup.config.loading import ConfigError
from selfsup.config.schema import AugmentConfig

LOCAL_TO_GLOBAL = 96 / 224  # the papers' local / global crop sides (96 and 224 px on ImageNet)


def check_scale(scale, key: str) -> tuple[float, float]:
    low, high = (float(v) for v in scale)
    if not 0 < low <= high <= 1:
        raise ConfigError(f"augment.{key} must be [low, high] area fractions with 0 < low <= high <= 1, got {list(scale)}")
    return low, high


class MultiCropViews(nn.Module):
    """``num_global_crops`` random resized crops of area fraction ``global_crop_scale`` (DINO's
    0.4-1; SwAV's 0.14-1) at ``global_crop_size`` (None: the input's size), then
    ``num_local_crops`` of ``local_crop_scale`` (0.05-0.4) at ``local_crop_size`` (None:
    round(input side * 96 / 224), e.g. 12 px for 28 px inputs). Every crop is then flipped and
    colour-augmented like :class:`selfsup.augment.SimCLRViews` (``crop_ratio``, ``hflip_prob``,
    jitter, greyscale, blur, solarisation), with per-sample random parameters drawn from the
    generator, on the batch's device; ``augment.view_blur_prob`` / ``view_solarize_prob`` give
    each crop (global crops first) its own probabilities. ``num_views`` and ``crop_scale`` are
    not used.

    ``forward(x, g)``: x float [N, C, H, W] in 0..1 -> list of tensors, the global crops
    [N, C, Hg, Wg] first, then the local crops [N, C, Hl, Wl] (sizes: :meth:`crop_sizes`)."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        if cfg.num_global_crops < 1 or cfg.num_local_crops < 0:
            raise ConfigError(f"multi-crop needs augment.num_global_crops >= 1 and augment.num_local_crops >= 0, "
                              f"got {cfg.num_global_crops} and {cfg.num_local_crops}")
        for key in ("global_crop_size", "local_crop_size"):
            if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
                raise ConfigError(f"augment.{key} must be a positive number of pixels or null, got {getattr(cfg, key)}")
        self.cfg = cfg
        self.num_crops = cfg.num_global_crops + cfg.num_local_crops
        self.scales = ([check_scale(cfg.global_crop_scale, "global_crop_scale")] * cfg.num_global_crops
                       + [check_scale(cfg.local_crop_scale, "local_crop_scale")] * cfg.num_local_crops)
        self.settings = view_settings(cfg, self.num_crops)

    def crop_sizes(self, input_size: tuple[int, int]) -> list[tuple[int, int]]:
        """(height, width) of every crop, in output order, for inputs of ``input_size``."""
        c = self.cfg
        h, w = input_size
        glob = (h, w) if c.global_crop_size is None else (c.global_crop_size, c.global_crop_size)
        local = ((max(1, round(h * LOCAL_TO_GLOBAL)), max(1, round(w * LOCAL_TO_GLOBAL)))
                 if c.local_crop_size is None else (c.local_crop_size, c.local_crop_size))
        return [glob] * c.num_global_crops + [local] * c.num_local_crops

    @torch.no_grad()
    def forward(self, x: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        c = self.cfg
        crops = []
        for size, scale, settings in zip(self.crop_sizes(tuple(x.shape[-2:])), self.scales, self.settings):
            crop = ops.random_resized_crop(x, g, scale, tuple(c.crop_ratio), c.hflip_prob, size)
            crops.append(photometric(crop, g, c, settings))
        return crops
