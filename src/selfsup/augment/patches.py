"""Patch geometry for the context pretext tasks: relative patch position and jigsaw.

Both cut a 3x3 grid of square patches out of each image. A :class:`PatchGrid` says how: patches
of ``patch`` px, ``gap`` px between the nominal positions of neighbouring patches, and an
independent integer shift in ``[-jitter, jitter]`` per patch and axis, so that the network
cannot solve the task by continuing lines or textures across patch borders (Doersch et al.
2015, section 3). The grid (with room for the jitter) is centred in the image.

Cells are numbered in raster order: cell ``3 * row + col``, the centre is cell 4.

Every function works on the whole batch at once with per-sample (per-patch) random
parameters drawn from a ``torch.Generator``; no per-sample Python loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.augment import ops

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


def drop_colour_channels(patches: torch.Tensor, g: torch.Generator, noise_ratio: float = 0.01) -> torch.Tensor:
    """Colour dropping against the chromatic-aberration shortcut (Doersch et al. 2015, sec. 4):
    each patch keeps one random colour channel; the other two are replaced by that channel's
    mean plus Gaussian noise with 1/100 of its standard deviation, so they carry no colour
    information. patches [M, 3, P, P]; other channel counts are returned unchanged."""
    if patches.shape[1] != 3:
        return patches
    m, device = patches.shape[0], patches.device
    keep = torch.randint(0, 3, (m,), generator=g, device=device)
    kept = patches[torch.arange(m, device=device), keep].unsqueeze(1)  # [M, 1, P, P]
    mean = kept.mean(dim=(-2, -1), keepdim=True)
    std = kept.std(dim=(-2, -1), keepdim=True, unbiased=False)
    noise = torch.randn(patches.shape, generator=g, device=device, dtype=patches.dtype)
    replaced = mean + noise_ratio * std * noise
    is_kept = (torch.arange(3, device=device) == keep[:, None]).view(m, 3, 1, 1)
    return torch.where(is_kept, patches, replaced)


def relative_patch_pairs(
    x: torch.Tensor,
    g: torch.Generator,
    grid: PatchGrid,
    labels: torch.Tensor | None = None,
    normalize: bool = True,
    drop_colour: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The relative patch position task (Doersch, Gupta, Efros, "Unsupervised Visual
    Representation Learning by Context Prediction", ICCV 2015) on a batch.

    For each image: the centre patch of the grid and the neighbour at position ``label`` (0..7,
    raster order of :data:`NEIGHBOUR_OFFSETS`), each independently jittered; with
    ``drop_colour`` colour images get :func:`drop_colour_channels` per patch, and with
    ``normalize`` every patch is standardised on its own.

    x: float [N, C, H, W]; labels: long [N] or None (drawn uniformly per image).
    Returns (centre [N, C, P, P], neighbour [N, C, P, P], labels [N])."""
    n, c, h, w = x.shape
    if labels is None:
        labels = torch.randint(0, len(NEIGHBOUR_CELLS), (n,), generator=g, device=x.device)
    neighbour_cell = torch.tensor(NEIGHBOUR_CELLS, device=x.device)[labels]
    cells = torch.stack([torch.full_like(neighbour_cell, CENTRE), neighbour_cell], dim=1)  # [N, 2]
    patches = crop_patches(x, grid.sample_corners(cells, h, w, g), grid.patch)  # [N, 2, C, P, P]
    flat = patches.reshape(2 * n, c, grid.patch, grid.patch)
    if drop_colour:
        flat = drop_colour_channels(flat, g)
    if normalize:
        flat = standardize_patches(flat)
    patches = flat.view(n, 2, c, grid.patch, grid.patch)
    return patches[:, 0], patches[:, 1], labels


def jigsaw_tiles(
    x: torch.Tensor,
    g: torch.Generator,
    grid: PatchGrid,
    permutations: torch.Tensor,
    labels: torch.Tensor | None = None,
    normalize: bool = True,
    grayscale_prob: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The jigsaw task (Noroozi & Favaro, "Unsupervised Learning of Visual Representations by
    Solving Jigsaw Puzzles", ECCV 2016) on a batch.

    The 9 jittered tiles of each image are put in the order of the permutation
    ``permutations[label]``: output position k holds the tile of cell ``permutations[label][k]``.
    With ``grayscale_prob`` colour images are turned grey first (per image; the paper's
    defence against chromatic aberration), with ``normalize`` each tile is standardised.

    x: float [N, C, H, W]; permutations: long [P, 9]; labels: long [N] or None (drawn
    uniformly per image). Returns (tiles [N, 9, C, T, T], labels [N])."""
    n, c, h, w = x.shape
    if permutations.dim() != 2 or permutations.shape[1] != GRID * GRID:
        raise ValueError(f"permutations must be [P, 9], got {tuple(permutations.shape)}")
    permutations = permutations.to(x.device)
    if labels is None:
        labels = torch.randint(0, len(permutations), (n,), generator=g, device=x.device)
    x = ops.random_grayscale(x, g, grayscale_prob)
    tiles = crop_patches(x, grid.sample_corners(permutations[labels], h, w, g), grid.patch)
    if normalize:
        tiles = standardize_patches(tiles)
    return tiles, labels
