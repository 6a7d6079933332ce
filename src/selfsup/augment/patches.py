"""Patch pretext views: relative-patch pairs and jigsaw tiles, cut on the grid of
:mod:`selfsup.core.patches`, batched with per-sample (per-patch) random parameters drawn from a
``torch.Generator``; no per-sample Python loops.
"""
from __future__ import annotations

import torch

from selfsup.augment import ops
from selfsup.core.patches import CENTRE, GRID, NEIGHBOUR_CELLS, PatchGrid, crop_patches, standardize_patches


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
