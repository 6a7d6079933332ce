"""Rotation prediction (Gidaris, Singh, Komodakis, "Unsupervised Representation Learning by
Predicting Image Rotations", ICLR 2018): every image in the batch in all four rotations."""
from __future__ import annotations

import torch

ROTATION_DEGREES = (0, 90, 180, 270)


def rotate_quarter_turns(x: torch.Tensor, turns: int) -> torch.Tensor:
    """x [N, C, H, W] rotated by ``turns`` x 90 degrees counter-clockwise (as displayed, row 0
    at the top); exact (a transpose and a flip, no resampling)."""
    return torch.rot90(x, turns, dims=(-2, -1))


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image, as RotNet trains: x [N, C, S, S] ->
    (images [4N, C, S, S], labels [4N]), rotation-major: rows k*N .. (k+1)*N - 1 are the whole
    batch rotated by ``ROTATION_DEGREES[k]`` and carry label k."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"rotation prediction needs square images, got {x.shape[-2]}x{x.shape[-1]}: set data.image_size"
        )
    n = x.shape[0]
    images = torch.cat([rotate_quarter_turns(x, k) for k in range(len(ROTATION_DEGREES))])
    labels = torch.arange(len(ROTATION_DEGREES), device=x.device).repeat_interleave(n)
    return images, labels
