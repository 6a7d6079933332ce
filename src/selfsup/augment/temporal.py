"""SimPer's temporal augmentations (Yang et al., "SimPer: Simple Self-Supervised Learning of
Periodic Targets", ICLR 2023, section 3.1), batched over clips with per-view random parameters.

Inputs are float batches of clips ``[B, L, C, H, W]`` (frames in 0..1) or of signals
``[B, L, C]``; the time axis is dim 1 throughout.

- Periodicity-*variant*: speed (frequency) change. Each clip gets M sorted random speeds, each
  used for two views, so view m and view m + M share a speed (the contrastive "label"). A view
  is the clip resampled by linear interpolation at times s * k, cropped to T frames at a random
  offset, and loop-padded if fewer than T resampled frames exist.
- Periodicity-*invariant*: the same random parameters for every frame of a view (temporal
  reverse, crop-resize, brightness, blur, horizontal flip for clips; reverse and amplitude
  scaling for signals), so they change appearance but not the view's frequency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from selfsup.augment import ops


def draw_speeds(batch: int, num_speeds: int, speed_range: tuple[float, float], g: torch.Generator,
                device=None) -> torch.Tensor:
    """[B, 2M]: per clip M speeds ~ U(speed_range), sorted, then repeated (view m and view m + M
    share speed m)."""
    low, high = speed_range
    if not 0 < low <= high:
        raise ValueError(f"speed range must satisfy 0 < low <= high, got {tuple(speed_range)}")
    if num_speeds < 1:
        raise ValueError(f"need at least one speed per clip, got {num_speeds}")
    speeds = low + (high - low) * torch.rand(batch, num_speeds, generator=g, device=device)
    return torch.sort(speeds, dim=1).values.repeat(1, 2)


def resampled_length(length: int, speeds: torch.Tensor) -> torch.Tensor:
    """How many frames a ``length``-frame clip has at each speed: the k >= 0 with s * k <= L - 1,
    i.e. floor((L - 1) / s) + 1 (floor(L / s) up to the end frame; no extrapolation)."""
    return (torch.floor((length - 1) / speeds.double() + 1e-9) + 1).long()


def speed_resample(x: torch.Tensor, speeds: torch.Tensor, offsets: torch.Tensor, frames: int) -> torch.Tensor:
    """Views of every clip at given speeds and crop offsets.

    x: [B, L, ...]; speeds: [B, V] (float); offsets: [B, V] (int, first resampled frame);
    returns [B, V, frames, ...] where frame j of view v is the clip linearly interpolated at
    time s_v * ((o_v + j) mod n_v), n_v = :func:`resampled_length` (so a view with fewer than
    ``frames`` resampled frames loops). Speed 1 with offset 0 returns the first frames exactly.
    """
    if x.dim() < 2 or speeds.dim() != 2 or speeds.shape != offsets.shape or speeds.shape[0] != x.shape[0]:
        raise ValueError(f"need x [B, L, ...], speeds and offsets [B, V]; got {tuple(x.shape)}, "
                         f"{tuple(speeds.shape)}, {tuple(offsets.shape)}")
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    b, length = x.shape[:2]
    v = speeds.shape[1]
    n = resampled_length(length, speeds)  # [B, V]
    k = (offsets.long().unsqueeze(-1) + torch.arange(frames, device=x.device)) % n.unsqueeze(-1)  # [B, V, T]
    times = (speeds.to(torch.float64).unsqueeze(-1) * k).clamp(max=length - 1)
    left = times.floor().long()
    right = (left + 1).clamp(max=length - 1)
    weight = (times - left).to(x.dtype)
    flat = x.reshape(b, length, -1)
    rows = torch.arange(b, device=x.device).view(b, 1)
    left_frames = flat[rows, left.view(b, -1)]  # [B, V*T, F]
    right_frames = flat[rows, right.view(b, -1)]
    w = weight.view(b, -1, 1)
    out = left_frames * (1 - w) + right_frames * w
    return out.view(b, v, frames, *x.shape[2:])


def random_offsets(lengths: torch.Tensor, frames: int, g: torch.Generator) -> torch.Tensor:
    """Uniform integer crop offsets in [0, max(n - frames, 0)] for resampled lengths n."""
    room = (lengths - frames).clamp(min=0) + 1
    u = torch.rand(lengths.shape, generator=g, device=lengths.device, dtype=torch.float64)
    return torch.minimum((u * room).floor().long(), room - 1)


def speed_views(x: torch.Tensor, num_speeds: int, frames: int, speed_range: tuple[float, float],
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SimPer's periodicity-variant augmentation: (views [B, 2M, T, ...], speeds [B, 2M])."""
    speeds = draw_speeds(x.shape[0], num_speeds, speed_range, g, x.device)
    offsets = random_offsets(resampled_length(x.shape[1], speeds), frames, g)
    return speed_resample(x, speeds, offsets, frames), speeds


@dataclass
class InvariantAugment:
    """Periodicity-invariant augmentations, one draw per view shared by all its frames; the
    defaults are SimPer's released code: reverse p=.5, crop-resize area [.5, 1] and aspect
    [.75, 1.33], brightness x U[.7, 1.3], blur p=.2 with sigma in [.1, 2] and kernel H // 20
    (made odd; 1, i.e. no blur, below 40 px), horizontal flip p=.5. Signals use the reverse and
    the brightness factor (as an amplitude scale) only."""

    reverse_prob: float = 0.5
    crop_scale: tuple = (0.5, 1.0)
    crop_ratio: tuple = (0.75, 1.33)
    brightness: float = 0.3
    blur_prob: float = 0.2
    blur_sigma: tuple = (0.1, 2.0)
    hflip_prob: float = 0.5


def simper_blur_kernel(image_size: int) -> int:
    """The released code's blur kernel, image_size // 20, rounded up to an odd size."""
    k = max(1, image_size // 20)
    return k if k % 2 else k + 1


def temporal_reverse(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """Reverse the time axis (dim 1) of each view [N, T, ...] with probability p."""
    flip = ops.coin(x.shape[0], p, g, x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(flip, x.flip(1), x)


def invariant_clip_views(x: torch.Tensor, g: torch.Generator, cfg: InvariantAugment) -> torch.Tensor:
    """x: clips [N, T, C, H, W] in 0..1 -> the same shape, each clip's frames transformed alike.

    The frames are folded into the channel axis ([N, T*C, H, W]), so the batched image ops of
    :mod:`selfsup.augment.ops` draw one set of parameters per clip. The flip is applied by the
    crop's resampling (it commutes with brightness and the symmetric blur)."""
    n, t, c, h, w = x.shape
    x = temporal_reverse(x, g, cfg.reverse_prob).reshape(n, t * c, h, w)
    x = ops.random_resized_crop(x, g, tuple(cfg.crop_scale), tuple(cfg.crop_ratio), cfg.hflip_prob)
    x = (x * ops.per_sample(ops.uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, g, x.device))).clamp(0, 1)
    kernel = simper_blur_kernel(min(h, w))
    if kernel > 1:
        x = ops.gaussian_blur(x, g, cfg.blur_prob, tuple(cfg.blur_sigma), kernel_size=kernel)
    return x.reshape(n, t, c, h, w)


def invariant_signal_views(x: torch.Tensor, g: torch.Generator, cfg: InvariantAugment) -> torch.Tensor:
    """x: signals [N, T, C] -> the same shape: reverse (p) and amplitude x U[1 - b, 1 + b]."""
    x = temporal_reverse(x, g, cfg.reverse_prob)
    return x * ops.uniform(x.shape[0], 1 - cfg.brightness, 1 + cfg.brightness, g, x.device).view(-1, 1, 1)


def invariant_views(x: torch.Tensor, g: torch.Generator, cfg: InvariantAugment) -> torch.Tensor:
    """Dispatch on the shape: clips [N, T, C, H, W] or signals [N, T, C]."""
    if x.dim() == 5:
        return invariant_clip_views(x, g, cfg)
    if x.dim() == 3:
        return invariant_signal_views(x, g, cfg)
    raise ValueError(f"expected clips [N, T, C, H, W] or signals [N, T, C], got shape {tuple(x.shape)}")


def default_frames(length: int, speed_range: tuple[float, float]) -> int:
    """SimPer's view length T = L // max speed (150 // 3 = 50 in the tutorial): every speed then
    has at least T resampled frames, so no view needs loop padding."""
    return max(2, math.floor(length / speed_range[1]))


class PeriodicViews(nn.Module):
    """SimPer's views of a batch: ``forward(x, g) -> (views [B, 2M, T, ...], speeds [B, 2M])``;
    speed-resampled, cropped, then invariantly augmented per view. ``frames`` None means
    :func:`default_frames` of the input length."""

    def __init__(self, num_speeds: int = 10, frames: int | None = None,
                 speed_range: tuple[float, float] = (0.5, 2.0), invariant: InvariantAugment | None = None):
        super().__init__()
        self.num_speeds, self.frames, self.speed_range = num_speeds, frames, tuple(speed_range)
        self.invariant = invariant or InvariantAugment()

    def view_frames(self, length: int) -> int:
        return self.frames or default_frames(length, self.speed_range)

    def forward(self, x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.draw(x, g, self.view_frames(x.shape[1]))

    @torch.no_grad()
    def draw(self, x: torch.Tensor, g: torch.Generator, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of ``frames`` frames: (views [B, 2M, frames, ...], speeds [B, 2M])."""
        views, speeds = speed_views(x, self.num_speeds, frames, self.speed_range, g)
        b, v = speeds.shape
        flat = invariant_views(views.reshape(b * v, *views.shape[2:]), g, self.invariant)
        return flat.view(views.shape), speeds


class TemporalPairViews(nn.Module):
    """Two views of every sequence at its own speed, for instance-discrimination methods (SimCLR)
    on clips and signals: ``forward(x, g) -> [view_1, view_2]``, each [B, T, ...], random
    temporal crops of T frames (default L // 2, SimPer's view length at its default speeds
    0.5-2) with SimPer's invariant augmentations, and no speed change; a baseline that sees the
    same frames and appearance changes as SimPer but not its frequency contrast."""

    def __init__(self, frames: int | None = None, invariant: InvariantAugment | None = None):
        super().__init__()
        self.views = PeriodicViews(num_speeds=1, speed_range=(1.0, 1.0), invariant=invariant)
        self.frames = frames

    def forward(self, x: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        views, _ = self.views.draw(x, g, self.frames or default_frames(x.shape[1], (0.5, 2.0)))
        return [views[:, 0], views[:, 1]]
