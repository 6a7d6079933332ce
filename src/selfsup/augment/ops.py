"""Batched image augmentations with per-sample random parameters.

Every op takes a float batch ``x`` [N, C, H, W] in 0..1 on any device and a
``torch.Generator`` on that device, draws one set of parameters per sample, and returns a new
batch. No per-sample Python loops: the whole batch is transformed by a few tensor ops, so the
same code serves a 2-core CPU and a GPU (fastai self_supervised does augmentation on the batch
on the device too).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def coin(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    """A bool [n] that is True with probability p."""
    return torch.rand(n, generator=g, device=device) < p


def crop_boxes(n: int, g: torch.Generator, scale: tuple[float, float], ratio: tuple[float, float],
               device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random boxes of area fraction ~U(scale) and aspect ratio ~logU(ratio), as
    (width, height, cx, cy) [n] each: half-sizes and centres in the normalised coordinates of
    ``F.affine_grid`` (the image spans -1..1), so ``|cx| + width <= 1`` and
    ``|cy| + height <= 1``: a box that would leave the image is shrunk to fit."""
    area = uniform(n, scale[0], scale[1], g, device)
    log_ratio = uniform(n, math.log(ratio[0]), math.log(ratio[1]), g, device)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * torch.rand(n, generator=g, device=device) - 1) * (1 - width)
    cy = (2 * torch.rand(n, generator=g, device=device) - 1) * (1 - height)
    return width, height, cx, cy


def random_resized_crop(
    x: torch.Tensor,
    g: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    hflip_prob: float = 0.0,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Crop a random box (:func:`crop_boxes`) resized to ``size`` (h, w; default the input's)
    by bilinear resampling, optionally mirrored horizontally with ``hflip_prob``; one affine
    resampling for the whole batch."""
    n, device = x.shape[0], x.device
    width, height, cx, cy = crop_boxes(n, g, scale, ratio, device)
    flip = torch.where(coin(n, hflip_prob, g, device), -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = height
    theta[:, 1, 2] = cy
    out_shape = list(x.shape) if size is None else [n, x.shape[1], *size]
    grid = F.affine_grid(theta, out_shape, align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, kept at the input's channel count."""
    if x.shape[1] != 3:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``turns`` (fractions of a full turn, per sample), as a
    rotation of the chroma plane in YIQ space (a linear approximation of an HSV hue shift)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    to_rgb = torch.linalg.inv(to_yiq)
    angle = 2 * math.pi * turns
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(x.shape[0], 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = to_rgb @ rot @ to_yiq  # [N, 3, 3]
    return torch.einsum("nij,njhw->nihw", matrix, x)


def color_jitter(
    x: torch.Tensor,
    g: torch.Generator,
    p: float,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
) -> torch.Tensor:
    """With probability p per sample: brightness x U[1-b, 1+b], contrast (blend with the mean
    grey) x U[1-c, 1+c], and for colour images saturation (blend with grey) x U[1-s, 1+s] and
    hue shift U[-h, h] turns; applied in that fixed order, clipped to 0..1."""
    n, device = x.shape[0], x.device
    apply = per_sample(coin(n, p, g, device))
    out = x * per_sample(uniform(n, 1 - brightness, 1 + brightness, g, device))
    out = out.clamp(0, 1)
    mean = grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
    out = (mean + per_sample(uniform(n, 1 - contrast, 1 + contrast, g, device)) * (out - mean)).clamp(0, 1)
    if x.shape[1] == 3:
        grey = grayscale(out)
        out = (grey + per_sample(uniform(n, 1 - saturation, 1 + saturation, g, device)) * (out - grey)).clamp(0, 1)
        out = rotate_hue(out, uniform(n, -hue, hue, g, device)).clamp(0, 1)
    return torch.where(apply, out, x)


def random_grayscale(x: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    if x.shape[1] != 3 or p <= 0:
        return x
    return torch.where(per_sample(coin(x.shape[0], p, g, x.device)), grayscale(x), x)


def blur_kernel_size(image_size: int) -> int:
    """About 10 % of the image side (SimCLR), odd, at least 3."""
    k = max(3, int(round(0.1 * image_size)))
    return k if k % 2 else k + 1


def gaussian_blur(x: torch.Tensor, g: torch.Generator, p: float, sigma: tuple[float, float],
                  kernel_size: int | None = None) -> torch.Tensor:
    """With probability p per sample, a Gaussian blur of sigma ~ U(sigma); separable, one
    grouped convolution per axis for the whole batch, reflect padding. ``kernel_size`` (odd)
    defaults to :func:`blur_kernel_size` of the image side."""
    if p <= 0:
        return x
    n, c, h, w = x.shape
    device = x.device
    k = blur_kernel_size(min(h, w)) if kernel_size is None else kernel_size
    if k < 1 or k % 2 == 0:
        raise ValueError(f"blur kernel_size must be odd and positive, got {k}")
    s = uniform(n, sigma[0], sigma[1], g, device).to(x.dtype)
    offsets = torch.arange(k, device=device, dtype=x.dtype) - (k - 1) / 2
    kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * s.view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # [n*c, k]
    flat = x.reshape(1, n * c, h, w)
    pad = k // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, k), groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel.view(n * c, 1, k, 1), groups=n * c)
    return torch.where(per_sample(coin(n, p, g, device)), flat.view(n, c, h, w), x)


def solarize(x: torch.Tensor, g: torch.Generator, p: float, threshold: float = 0.5) -> torch.Tensor:
    """With probability p per sample, invert the pixels at or above ``threshold``:
    x -> 1 - x where x >= threshold (BYOL, Grill et al. 2020, appendix B: threshold 0.5)."""
    if p <= 0:
        return x
    solarized = torch.where(x >= threshold, 1 - x, x)
    return torch.where(per_sample(coin(x.shape[0], p, g, x.device)), solarized, x)
