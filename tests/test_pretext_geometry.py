"""Geometry of the pretext transforms: tile positions, patch offsets, jitter bounds, rotations."""
import pytest
import torch

from selfsup.augment.exemplar import ExemplarViews, random_rotation, rotate
from selfsup.augment.patches import drop_colour_channels, jigsaw_tiles, relative_patch_pairs
from selfsup.core.patches import (NEIGHBOUR_OFFSETS, PatchGrid, central_tiling, crop_patches, doersch_grid, noroozi_grid,
                                  standardize_patches)
from selfsup.augment.permutations import max_hamming_permutations
from selfsup.augment.rotation import rotate_quarter_turns, rotation_batch
from selfsup.config.schema import AugmentConfig


def coordinate_images(n: int, h: int, w: int, c: int = 1) -> torch.Tensor:
    """Pixel (r, col) of every channel holds r * w + col: a patch's corner value says where it was cut."""
    grid = (torch.arange(h).view(h, 1) * w + torch.arange(w)).float()
    return grid.expand(n, c, h, w).clone()


def corners_of(patches: torch.Tensor, w: int) -> torch.Tensor:
    """(row, col) of the top-left pixel of each patch [..., C, P, P] cut from coordinate_images."""
    value = patches[..., 0, 0, 0].long()
    return torch.stack([value // w, value % w], dim=-1)


@pytest.mark.parametrize("size,expected", [(28, (6, 3, 1)), (32, (7, 4, 1)), (64, (15, 8, 1)), (224, (54, 27, 4)),
                                           (398, (96, 48, 7))])
def test_doersch_grid_follows_the_image_size(size, expected):
    grid = doersch_grid(size)
    assert (grid.patch, grid.gap, grid.jitter) == expected
    assert grid.extent <= size
    assert grid.gap > 2 * grid.jitter  # jittered neighbours never touch


@pytest.mark.parametrize("size,expected", [(28, (7, 2, 1)), (32, (8, 2, 1)), (96, (27, 5, 2)), (225, (64, 11, 5))])
def test_noroozi_grid_follows_the_image_size(size, expected):
    grid = noroozi_grid(size)
    assert (grid.patch, grid.gap, grid.jitter) == expected
    assert grid.extent <= size and grid.gap >= 2 * grid.jitter  # tiles never overlap


@pytest.mark.parametrize("make", [doersch_grid, noroozi_grid])
def test_too_small_images_are_rejected_with_the_fix(make):
    with pytest.raises(ValueError, match="too small"):
        make(8)
    with pytest.raises(ValueError, match="method.patch_size"):
        PatchGrid(10, 4, 2).nominal_corners(28, 28)


def coverage(grid: PatchGrid, h: int, w: int) -> torch.Tensor:
    """How many of the grid's patches cover each pixel of an h x w image, long [h, w]."""
    x = coordinate_images(1, h, w)
    cut = crop_patches(x, grid.nominal_corners(h, w).unsqueeze(0), grid.patch).long().flatten()
    return torch.bincount(cut, minlength=h * w).view(h, w)


@pytest.mark.parametrize("h,w", [(28, 28), (32, 32), (29, 31), (96, 64), (3, 3)])
def test_the_eval_tiling_covers_the_central_crop_exactly_once(h, w):
    grid = central_tiling(h, w)
    side = 3 * (min(h, w) // 3)
    assert (grid.patch, grid.gap, grid.jitter) == (side // 3, 0, 0)
    counts = coverage(grid, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = torch.zeros(h, w, dtype=torch.long)
    crop[top:top + side, left:left + side] = 1
    assert torch.equal(counts, crop)  # every pixel of the central crop once, nothing outside it, no gaps


def test_the_training_grids_leave_gaps_the_eval_tiling_fills():
    """28 px: the training grids' patches cover 41 % (relative patch) and 56 % (jigsaw) of the
    pixels; the eval tiling 27 x 27 = 93 %."""
    covered = {name: coverage(PatchGrid(g.patch, g.gap, 0), 28, 28).clamp(max=1).sum().item() / 784
               for name, g in (("relative-patch", doersch_grid(28)), ("jigsaw", noroozi_grid(28)))}
    assert covered == pytest.approx({"relative-patch": 324 / 784, "jigsaw": 441 / 784})
    assert coverage(central_tiling(28, 28), 28, 28).sum().item() == 27 * 27
    with pytest.raises(ValueError, match="too small"):
        central_tiling(2, 28)


def test_nominal_tiles_are_a_centred_raster_grid():
    grid = PatchGrid(patch=5, gap=3, jitter=0)  # spans 3*5 + 2*3 = 21 of 28 px: margin 3 on top, 4 below
    corners = grid.nominal_corners(28, 30)
    expected = [(3 + 8 * r, 4 + 8 * c) for r in range(3) for c in range(3)]
    assert corners.tolist() == [list(e) for e in expected]
    x = coordinate_images(1, 28, 30)
    patches = crop_patches(x, corners.unsqueeze(0), 5)
    assert patches.shape == (1, 9, 1, 5, 5)
    for k, (r, c) in enumerate(expected):  # every tile is exactly the image slice at its cell
        assert torch.equal(patches[0, k, 0], x[0, 0, r:r + 5, c:c + 5])


@pytest.mark.parametrize("size", [28, 32, 45])
def test_relative_patch_offsets_for_each_of_the_8_positions(size):
    grid = doersch_grid(size)
    flat = PatchGrid(grid.patch, grid.gap, jitter=0)
    x = coordinate_images(8, size, size)
    labels = torch.arange(8)
    g = torch.Generator().manual_seed(0)
    centre, neighbour, out_labels = relative_patch_pairs(x, g, flat, labels, normalize=False)
    assert torch.equal(out_labels, labels) and centre.shape == (8, 1, grid.patch, grid.patch)
    offset = corners_of(neighbour, size) - corners_of(centre, size)
    expected = torch.tensor(NEIGHBOUR_OFFSETS) * grid.stride
    assert torch.equal(offset, expected)
    # with jitter, the offset stays within 2 * jitter of the nominal one and patches never overlap
    x = coordinate_images(4000, size, size)
    labels = torch.randint(0, 8, (4000,), generator=g)
    centre, neighbour, _ = relative_patch_pairs(x, g, grid, labels, normalize=False)
    offset = corners_of(neighbour, size) - corners_of(centre, size)
    deviation = offset - torch.tensor(NEIGHBOUR_OFFSETS)[labels] * grid.stride
    assert deviation.abs().max() == 2 * grid.jitter
    assert (offset.abs().max(dim=1).values > grid.patch).all()


def test_random_labels_cover_all_8_positions_uniformly():
    g = torch.Generator().manual_seed(1)
    _, _, labels = relative_patch_pairs(torch.rand(8000, 1, 28, 28), g, doersch_grid(28))
    counts = torch.bincount(labels, minlength=8)
    assert counts.min() > 850 and counts.max() < 1150


def test_jitter_is_uniform_within_its_bounds():
    grid = PatchGrid(patch=4, gap=6, jitter=2)
    g = torch.Generator().manual_seed(2)
    cells = torch.randint(0, 9, (20000, 1), generator=g)
    shift = grid.sample_corners(cells, 28, 28, g) - grid.nominal_corners(28, 28)[cells]
    counts = torch.bincount((shift + 2).flatten(), minlength=5)
    assert len(counts) == 5  # no shift outside [-2, 2]
    assert counts.min() > 0.18 * 40000 and counts.max() < 0.22 * 40000
    assert not torch.equal(shift[:, 0, 0], shift[:, 0, 1])  # the two axes are drawn independently


def test_jigsaw_puts_the_tile_of_cell_perm_k_at_position_k():
    size = 32
    grid = PatchGrid(noroozi_grid(size).patch, noroozi_grid(size).gap, jitter=0)
    perms = max_hamming_permutations(10, seed=0)
    x = coordinate_images(10, size, size)
    g = torch.Generator().manual_seed(0)
    tiles, labels = jigsaw_tiles(x, g, grid, perms, torch.arange(10), normalize=False)
    assert tiles.shape == (10, 9, 1, grid.patch, grid.patch)
    nominal = grid.nominal_corners(size, size)
    for i in range(10):
        assert torch.equal(corners_of(tiles[i], size), nominal[perms[i]])
    # undoing the permutation puts every tile back in its own cell
    unshuffled = torch.empty_like(tiles)
    unshuffled[torch.arange(10)[:, None], perms] = tiles
    identity = torch.arange(9).expand(10, 9)
    unshuffled_tiles, _ = jigsaw_tiles(x, g, grid, identity, torch.zeros(10, dtype=torch.long), normalize=False)
    assert torch.equal(unshuffled, unshuffled_tiles)


def test_jigsaw_tiles_are_jittered_independently_and_within_bounds():
    size = 28
    grid = noroozi_grid(size)
    perms = max_hamming_permutations(5, seed=0)
    g = torch.Generator().manual_seed(4)
    tiles, labels = jigsaw_tiles(coordinate_images(500, size, size), g, grid, perms, normalize=False)
    deviation = corners_of(tiles, size) - grid.nominal_corners(size, size)[perms[labels]]
    assert deviation.abs().max() == grid.jitter
    assert len(torch.unique(deviation.reshape(-1, 2), dim=0)) == (2 * grid.jitter + 1) ** 2
    assert torch.bincount(labels, minlength=5).min() > 60  # labels drawn from the whole set


def test_jigsaw_rejects_a_wrong_permutation_shape():
    with pytest.raises(ValueError, match=r"\[P, 9\]"):
        jigsaw_tiles(torch.rand(2, 1, 28, 28), torch.Generator(), noroozi_grid(28), torch.zeros(3, 4, dtype=torch.long))


def test_patches_are_standardised_one_by_one_and_blank_patches_stay_blank():
    g = torch.Generator().manual_seed(5)
    patches = torch.rand(6, 3, 7, 7, generator=g) * torch.arange(1, 7).view(6, 1, 1, 1) + 3
    out = standardize_patches(patches)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(6), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3), unbiased=False), torch.ones(6), atol=1e-5)
    blank = standardize_patches(torch.full((2, 1, 5, 5), 0.3) + 1e-4 * torch.rand(2, 1, 5, 5, generator=g))
    assert blank.abs().max() < 0.02
    centre, neighbour, _ = relative_patch_pairs(torch.rand(5, 1, 28, 28, generator=g), g, doersch_grid(28))
    assert torch.allclose(neighbour.mean(dim=(1, 2, 3)), torch.zeros(5), atol=1e-5)


def test_colour_dropping_keeps_one_channel_and_flattens_the_others():
    g = torch.Generator().manual_seed(6)
    patches = torch.rand(300, 3, 6, 6, generator=g)
    out = drop_colour_channels(patches, g)
    same = (out == patches).all(dim=(2, 3))  # [300, 3]: which channels were kept
    assert (same.sum(1) == 1).all()
    assert torch.bincount(same.float().argmax(1), minlength=3).min() > 70  # each channel kept sometimes
    kept = patches[same].view(300, 1, 6, 6)
    dropped = out[~same].view(300, 2, 6, 6)
    assert torch.allclose(dropped.mean(dim=(2, 3)), kept.mean(dim=(2, 3)).expand(300, 2), atol=0.01)
    ratio = dropped.std(dim=(2, 3)) / kept.std(dim=(2, 3))
    assert (ratio < 0.03).all()  # noise of about 1/100 of the kept channel's spread
    grey = torch.rand(4, 1, 6, 6, generator=g)
    assert torch.equal(drop_colour_channels(grey, g), grey)


def test_rotation_batch_labels_and_rotating_back():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(5, 2, 9, 9, generator=g)
    images, labels = rotation_batch(x)
    assert images.shape == (20, 2, 9, 9)
    assert labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    for k in range(4):
        block = images[labels == k]
        assert torch.equal(rotate_quarter_turns(block, -k), x)  # rotating back gives the original
    assert not torch.equal(images[5:10], x)
    marker = torch.zeros(1, 1, 3, 3)
    marker[0, 0, 0, 2] = 1  # top right
    turned, _ = rotation_batch(marker)
    assert turned[1, 0, 0, 0] == 1  # 90 degrees counter-clockwise: top right -> top left
    assert turned[2, 0, 2, 0] == 1 and turned[3, 0, 2, 2] == 1


def test_rotation_batch_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        rotation_batch(torch.rand(2, 1, 8, 10))


def test_exemplar_rotation_matches_quarter_turns_and_stays_in_bounds():
    x = torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(rotate(x, torch.full((3,), 90.0)), rotate_quarter_turns(x, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(x, torch.zeros(3)), x, atol=1e-6, rtol=0)
    wide = torch.rand(2, 1, 6, 10)
    torch.testing.assert_close(rotate(wide, torch.full((2,), 180.0)), rotate_quarter_turns(wide, 2), atol=1e-5, rtol=0)
    out = random_rotation(x, torch.Generator().manual_seed(0), 20.0)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


def test_exemplar_views_are_distinct_seeded_augmentations():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(9))
    views = ExemplarViews(AugmentConfig(), num_views=5)(x, torch.Generator().manual_seed(0))
    again = ExemplarViews(AugmentConfig(), num_views=5)(x, torch.Generator().manual_seed(0))
    assert len(views) == 5 and all(v.shape == x.shape for v in views)
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    assert not torch.allclose(views[0], views[1])
    with pytest.raises(ValueError, match="at least 2 views"):
        ExemplarViews(AugmentConfig(), num_views=1)
