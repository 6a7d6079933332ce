"""Patch geometry shared by the patch pretext tasks (relative patch position, jigsaw), their
augmentations and the encoders that read a grid of patches.

A :class:`PatchGrid` cuts a 3x3 grid of square patches out of each image: patches of ``patch``
px, ``gap`` px between the nominal positions of neighbouring patches, and an independent
integer shift in ``[-jitter, jitter]`` per patch and axis, so that the network cannot solve the
task by continuing lines or textures across patch borders (Doersch et al. 2015, section 3). The
grid (with room for the jitter) is centred in the image. Cells are numbered in raster order:
cell ``3 * row + col``, the centre is cell 4. Every function works on the whole batch at once.
Evaluation uses another geometry, :func:`central_tiling` (a gapless 3x3 tiling of the central crop).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

GRID = 3
CENTRE = 4
# relative-position label k -> (row, col) offset of the neighbour from the centre cell
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
NEIGHBOUR_CELLS = tuple(GRID * (1 + dr) + (1 + dc) for dr, dc in NEIGHBOUR_OFFSETS)  # 0,1,2,3,5,6,7,8


@dataclass(frozen=True)
class PatchGrid:
    """A 3x3 grid of ``patch`` x ``patch`` patches, ``gap`` px apart, each shifted by up to
    ``jitter`` px per axis. It needs ``extent = 3 * patch + 2 * gap + 2 * jitter`` px per side."""

    patch: int
    gap: int
    jitter: int

    def __post_init__(self):
        if self.patch < 1 or self.gap < 0 or self.jitter < 0:
            raise ValueError(f"patch grid needs patch >= 1, gap >= 0, jitter >= 0; got {self}")

    @property
    def stride(self) -> int:
        """Distance between the nominal corners of neighbouring cells."""
        return self.patch + self.gap

    @property
    def extent(self) -> int:
        return GRID * self.patch + (GRID - 1) * self.gap + 2 * self.jitter

    def check_fits(self, height: int, width: int) -> None:
        if self.extent > min(height, width):
            raise ValueError(
                f"a 3x3 grid of {self.patch} px patches with a {self.gap} px gap and +-{self.jitter} px jitter "
                f"needs {self.extent} px per side, but the images are {height}x{width}: choose a smaller "
                "patch / gap / jitter (method.patch_size, method.gap, method.jitter) or larger images"
            )

    def nominal_corners(self, height: int, width: int) -> torch.Tensor:
        """Top-left (row, col) of each of the 9 cells before jitter, long [9, 2], raster order."""
        self.check_fits(height, width)
        span = GRID * self.patch + (GRID - 1) * self.gap
        top, left = (height - span) // 2, (width - span) // 2
        steps = torch.arange(GRID) * self.stride
        rows = (top + steps).repeat_interleave(GRID)
        cols = (left + steps).repeat(GRID)
        return torch.stack([rows, cols], dim=1)

    def sample_corners(self, cells: torch.Tensor, height: int, width: int, g: torch.Generator) -> torch.Tensor:
        """Jittered top-left corners of the given cells, long [*cells.shape, 2]: the nominal
        corner plus an independent uniform integer in [-jitter, jitter] per patch and axis."""
        nominal = self.nominal_corners(height, width).to(cells.device)[cells]
        shift = torch.randint(-self.jitter, self.jitter + 1, nominal.shape, generator=g, device=cells.device)
        return nominal + shift


def doersch_grid(size: int) -> PatchGrid:
    """Relative-patch geometry for images of side ``size``, in the proportions of Doersch et
    al. 2015 (96 px patches, 48 px gap, +-7 px jitter, about 400 px used): jitter about
    7/398 of the side (at least 1 px), a gap of about half a patch and always wider than
    twice the jitter (jittered patches never touch), patches filling the rest.
    28 px -> patch 6, gap 3, jitter 1; 32 px -> 7, 4, 1; 64 px -> 15, 8, 1; 224 px -> 54, 27, 4."""
    jitter = max(1, round(7 * size / 398))
    gap = max(2 * jitter + 1, round(48 * size / 398))
    patch = (size - 2 * gap - 2 * jitter) // GRID
    if patch < 2:
        raise ValueError(f"images of {size} px are too small for relative patch position (need at least 14 px)")
    return PatchGrid(patch, gap, jitter)


def noroozi_grid(size: int) -> PatchGrid:
    """Jigsaw geometry for images of side ``size``, in the proportions of Noroozi & Favaro
    2016 (a 225 px crop in 3x3 cells of 75 px, a random 64 px tile in each cell): cells of
    ``size // 3``, tiles of about 64/75 of a cell, the slack split into a gap and a jitter of
    at least 1 px (neighbouring tiles may touch, never overlap).
    28 px -> tile 7, gap 2, jitter 1; 32 px -> 8, 2, 1; 225 px -> 64, 11, 5."""
    cell = size // GRID
    tile = round(cell * 64 / 75)
    jitter = max(1, (cell - tile) // 2)
    tile = min(tile, cell - 2 * jitter)
    if tile < 2:
        raise ValueError(f"images of {size} px are too small for jigsaw tiles (need at least 12 px)")
    return PatchGrid(tile, cell - tile, jitter)


def central_tiling(height: int, width: int) -> PatchGrid:
    """The evaluation tiling of the patch tasks: the central square crop of ``3 * (min(H, W) // 3)``
    px cut into 3x3 tiles of ``min(H, W) // 3`` px without gaps or jitter, so the tiles cover the
    crop exactly once (Kolesnikov et al. 2019 evaluate patch-based models on a 3x3 grid of the
    central crop and average the tiles' representations). 28 px -> 9 px tiles covering 27x27
    (93 % of the pixels; the training grids' patches cover 41 % (relative patch) and 56 % (jigsaw))."""
    tile = min(height, width) // GRID
    if tile < 1:
        raise ValueError(f"images of {height}x{width} px are too small to tile 3x3 (need at least 3 px per side)")
    return PatchGrid(tile, gap=0, jitter=0)


def crop_patches(x: torch.Tensor, corners: torch.Tensor, size: int) -> torch.Tensor:
    """Square patches of ``size`` px at the given top-left corners: x [N, C, H, W], corners
    long [N, K, 2] -> [N, K, C, size, size]; one gather for the whole batch."""
    n, k = corners.shape[:2]
    offsets = torch.arange(size, device=x.device)
    rows = corners[..., 0, None] + offsets  # [N, K, size]
    cols = corners[..., 1, None] + offsets
    sample = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    patches = x[sample, :, rows[..., :, None], cols[..., None, :]]  # [N, K, size, size, C]
    return patches.permute(0, 1, 4, 2, 3)


def standardize_patches(patches: torch.Tensor, min_std: float = 1e-2) -> torch.Tensor:
    """Each patch (over its channels and pixels) to zero mean and unit standard deviation,
    the per-patch normalisation of Doersch et al. and Noroozi & Favaro. The standard
    deviation is floored at ``min_std`` (0..1 scale) so blank patches stay blank instead of
    being blown up into noise. patches [..., C, P, P]."""
    mean = patches.mean(dim=(-3, -2, -1), keepdim=True)
    std = patches.std(dim=(-3, -2, -1), keepdim=True, unbiased=False)
    return (patches - mean) / std.clamp_min(min_std)
