"""RotColor-MNIST: an equivariance benchmark with known transformation parameters.

Each object is one real MNIST digit (the 5,000 of ``mnist``). A view of it is rendered on an
S x S canvas (``data.image_size``, default 32) from three latent parameters:

    theta ~ U[-pi/2, pi/2]   rotation (bilinear, about the centre)
    h_f ~ U[0, 1)            digit hue, colour hsv(h_f, 1, 0.9)
    h_b ~ U[0, 1)            background hue, colour hsv(h_b, 0.6, 0.6)

    pixel = I * rgb(h_f) + (1 - I) * rgb(h_b),   I = the rotated digit intensity in 0..1.

The action from view 1 to view 2 is ``[cos dtheta, sin dtheta, dh_f, dh_b]`` (the hue differences
are not wrapped, as the ContextSSL code does for 3DIEBench's hues); the absolute parameters of a
view are ``[cos theta, sin theta, h_f, h_b]``. Factors: ``rot`` = columns 0-1, ``color`` = 2-3.

How a sample is represented. A sample is an object: its input is the canonical digit (upright,
white on black, uint8 [3, S, S]) and its label the digit class. Its K = 20 recorded views are
``targets["theta"]``, ``targets["digit_hue"]``, ``targets["background_hue"]`` (float [N, K] each,
seeded by the run seed) and are rendered on demand by :func:`recorded_views`; the evaluation
(R^2, MRR over an object's K views, the context pairs) reads them. Training draws fresh
parameters from the same distribution and renders them on the device (:func:`render`), because
a method only receives the batch's inputs: the action of a training pair is then computed from
the parameters the method drew, by the same :func:`relative_action`. Train and test objects
are disjoint (seeded ``data.test_fraction``), so are train and validation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.config.schema import DataConfig
from selfsup.data.base import ArrayDataset, IndexedDataset, RawSplits
from selfsup.data.images import held_out_splits, load_mnist_5k
from selfsup.data.registry import dataset

VIEWS_PER_OBJECT = 20
DEFAULT_SIZE = 32
MAX_ANGLE = math.pi / 2
DIGIT_SATURATION, DIGIT_VALUE = 1.0, 0.9
BACKGROUND_SATURATION, BACKGROUND_VALUE = 0.6, 0.6
PARAM_NAMES = ("theta", "digit_hue", "background_hue")
ACTION_FACTORS = {"rot": (0, 2), "color": (2, 4)}


def hsv_to_rgb(hue: torch.Tensor, saturation: float, value: float) -> torch.Tensor:
    """[...] hues in turns -> [..., 3] RGB in 0..1 (channel n: v - v s clamp(min(k, 4 - k), 0, 1),
    k = (n + 6 h) mod 6 with n = 5, 3, 1 for R, G, B)."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype)
    k = torch.remainder(n + 6 * hue.unsqueeze(-1), 6)
    return value - value * saturation * torch.minimum(k, 4 - k).clamp(0, 1)


def canonical_canvas(digits: np.ndarray, size: int) -> torch.Tensor:
    """uint8 digits [N, 28, 28] -> upright white-on-black canvases uint8 [N, 3, size, size]
    (centred, zero-padded or centre-cropped to the canvas)."""
    x = torch.from_numpy(np.asarray(digits, dtype=np.uint8))
    h = x.shape[-1]
    before = (size - h) // 2
    x = F.pad(x, (before, size - h - before, before, size - h - before))
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def render(canonical: torch.Tensor, theta: torch.Tensor, digit_hue: torch.Tensor,
           background_hue: torch.Tensor) -> torch.Tensor:
    """Views [N, 3, S, S] (0..1) of canonical canvases [N, C, S, S] (0..1, channel 0 = intensity),
    one (theta, h_f, h_b) per row; one batched affine resampling, no per-sample loop."""
    intensity = canonical[:, :1].float()
    n = intensity.shape[0]
    cos, sin = torch.cos(theta).float(), torch.sin(theta).float()
    affine = torch.zeros(n, 2, 3, device=intensity.device)
    affine[:, 0, 0], affine[:, 0, 1], affine[:, 1, 0], affine[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(affine, list(intensity.shape), align_corners=False)
    rotated = F.grid_sample(intensity, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    digit = hsv_to_rgb(digit_hue.float(), DIGIT_SATURATION, DIGIT_VALUE).view(n, 3, 1, 1)
    background = hsv_to_rgb(background_hue.float(), BACKGROUND_SATURATION, BACKGROUND_VALUE).view(n, 3, 1, 1)
    return rotated * digit + (1 - rotated) * background


def draw_view_params(shape: tuple[int, ...], generator: torch.Generator, device=None) -> dict[str, torch.Tensor]:
    """Seeded view parameters of the given shape: theta ~ U[-pi/2, pi/2], hues ~ U[0, 1)."""
    def u():
        return torch.rand(shape, generator=generator, device=device)

    return {"theta": (2 * u() - 1) * MAX_ANGLE, "digit_hue": u(), "background_hue": u()}


def absolute_params(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """[..., 4]: [cos theta, sin theta, h_f, h_b] of each view."""
    theta = params["theta"]
    return torch.stack([torch.cos(theta), torch.sin(theta), params["digit_hue"], params["background_hue"]], dim=-1)


def relative_action(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> torch.Tensor:
    """[..., 4]: the action from each view of ``first`` to the matching view of ``second``,
    [cos(theta2 - theta1), sin(theta2 - theta1), h_f2 - h_f1, h_b2 - h_b1]."""
    delta = second["theta"] - first["theta"]
    return torch.stack([torch.cos(delta), torch.sin(delta), second["digit_hue"] - first["digit_hue"],
                        second["background_hue"] - first["background_hue"]], dim=-1)


def recorded_params(dataset: IndexedDataset, indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """The recorded parameters [n, K] of the given objects."""
    missing = [name for name in PARAM_NAMES if name not in dataset.targets]
    if missing:
        raise ValueError(f"this dataset has no recorded view parameters {missing}: use rotcolor-mnist")
    return {name: dataset.targets[name][indices] for name in PARAM_NAMES}


def recorded_views(dataset: IndexedDataset, indices: torch.Tensor) -> torch.Tensor:
    """uint8 [n, K, 3, S, S]: the K recorded views of each of the given objects."""
    params = recorded_params(dataset, indices)
    canonical = dataset.load(indices)
    n, k = params["theta"].shape
    flat = {name: p.reshape(-1) for name, p in params.items()}
    views = render(canonical.repeat_interleave(k, dim=0).float() / 255, **flat)
    return (views * 255).round().to(torch.uint8).view(n, k, *views.shape[1:])


@dataset("RotColor-MNIST: 5,000 real digits, each in 20 views of recorded rotation "
         "and digit/background hue (ContextSSL), 10 classes")
def rotcolor_mnist(cfg: DataConfig, seed: int) -> RawSplits:
    digits, labels = load_mnist_5k()
    size = cfg.image_size or DEFAULT_SIZE
    g = torch.Generator().manual_seed(seed)
    params = draw_view_params((len(labels), VIEWS_PER_OBJECT), g)
    dataset = ArrayDataset(canonical_canvas(digits, size), torch.from_numpy(labels), params)
    return held_out_splits(dataset, cfg, seed, num_classes=10, class_names=[str(k) for k in range(10)],
                           info={"views_per_object": VIEWS_PER_OBJECT, "action_factors": dict(ACTION_FACTORS)})
