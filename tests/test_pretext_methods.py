"""The four pretext methods on small batches: views, losses, gradients, what they keep."""
import pytest
import torch

from selfsup.core.patches import NEIGHBOUR_OFFSETS, crop_patches, standardize_patches
from selfsup.augment.permutations import max_hamming_permutations
from selfsup.config.schema import AugmentConfig, ModelConfig
from selfsup.methods import MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder, export_encoder, load_encoder
from selfsup.models.patch_grid import PatchGridEncoder


def build(name, shape=(1, 28, 28), augment=None, **params):
    cls, p = resolve_method_params({"name": name, **params})
    spec = InputSpec(shape[0], shape)
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(width=8), spec, [0.5] * shape[0], [0.25] * shape[0])
    return cls(p, encoder, MethodContext(spec, 10, augment or AugmentConfig(num_views=3, blur_prob=0.0)))


CASES = [("rotnet", {}), ("relative-patch", {}), ("relative-patch", {"pairs_per_image": 8}),
         ("jigsaw", {"num_permutations": 12}), ("exemplar", {}), ("exemplar", {"mining": "batch-hard"})]


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name,params", CASES)
def test_a_training_step_gives_a_finite_loss_and_gradients_everywhere(name, params, shape):
    method = build(name, shape, **params)
    x, y = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1)), torch.arange(6)
    out = method.loss(method.make_views(x, torch.Generator().manual_seed(0)), y)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    assert out["features"].shape == (6, method.encoder.feature_dim)
    out["loss"].backward()
    for module in (method.encoder, method.head):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    if name != "exemplar":
        assert 0 <= out["pretext_top1"] <= 1
    method.encoder.eval()
    assert method.encoder(x).shape == (6, method.encoder.feature_dim)


def test_rotnet_sees_every_image_in_all_four_rotations():
    method = build("rotnet", crop_scale=[1.0, 1.0], hflip_prob=0.0)
    x = torch.rand(5, 1, 28, 28)
    images, rotations = method.make_views(x, torch.Generator().manual_seed(0))
    assert rotations.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    torch.testing.assert_close(images[:5], x, atol=1e-5, rtol=0)  # a full crop, no flip: the images
    torch.testing.assert_close(images[10:15], x.flip(-1).flip(-2), atol=1e-5, rtol=0)
    cropped, rotations = build("rotnet").make_views(x, torch.Generator().manual_seed(0))
    for k in range(1, 4):  # every block is the first one (crop and flip shared) rotated
        assert torch.equal(cropped[5 * k : 5 * k + 5], torch.rot90(cropped[:5], k, dims=(-2, -1)))


def test_relative_patch_with_all_neighbours_gives_each_image_every_position_once():
    method = build("relative-patch", pairs_per_image=8)
    centre, neighbour, positions = method.make_views(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0))
    assert centre.shape == neighbour.shape == (32, 1, 6, 6)
    assert (positions.view(4, 8).sort(1).values == torch.arange(len(NEIGHBOUR_OFFSETS))).all()


@pytest.mark.parametrize("tiling,tile", [("central", 9), ("training", 7)])
def test_patch_encoder_is_the_mean_of_its_standardised_grid_patches(tiling, tile):
    method = build("jigsaw", num_permutations=4, eval_tiling=tiling)
    encoder = method.encoder.eval()
    assert isinstance(encoder, PatchGridEncoder) and encoder.grid.jitter == 0 and encoder.grid.patch == tile
    assert (method.grid.patch, method.grid.gap) == (7, 2)  # training keeps the paper's geometry either way
    x = torch.rand(3, 1, 28, 28)
    corners = encoder.grid.nominal_corners(28, 28).expand(3, -1, -1)
    patches = standardize_patches(crop_patches(x, corners, tile)).reshape(27, 1, tile, tile)
    expected = encoder.backbone(patches).view(3, 9, -1).mean(1)
    torch.testing.assert_close(encoder(x), expected)
    pooled_last = encoder.forward_stages(x)["block4"].mean(dim=(2, 3))
    torch.testing.assert_close(pooled_last, expected)
    plain = build_encoder(ModelConfig(width=8), InputSpec(1, (1, 28, 28)), [0.5], [0.25])
    assert encoder.state_dict().keys() == plain.state_dict().keys()  # checkpoints and exports load either way


def test_exported_patch_encoder_loads_back_with_its_grid(tmp_path):
    """`selfsup embed` and `load_encoder` give a patch-trained run the features its eval uses."""
    method = build("relative-patch", patch_size=6, gap=2, eval_tiling="training")
    encoder = method.encoder.eval()
    export_encoder(encoder, ModelConfig(width=8), InputSpec(1, (1, 28, 28)), tmp_path / "encoder.safetensors")
    loaded = load_encoder(tmp_path)
    assert isinstance(loaded, PatchGridEncoder) and (loaded.grid.patch, loaded.grid.gap, loaded.grid.jitter) == (6, 2, 0)
    export_encoder(build("relative-patch").encoder, ModelConfig(width=8), InputSpec(1, (1, 28, 28)),
                   tmp_path / "encoder.safetensors")
    central = load_encoder(tmp_path).grid
    assert (central.patch, central.gap, central.jitter) == (9, 0, 0)  # the default: the gapless central tiling
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), encoder(x))
    assert not torch.allclose(loaded(x), loaded.backbone(x), atol=1e-3)  # not the whole-image backbone features


def test_jigsaw_keeps_its_permutation_set_in_the_state_dict():
    method = build("jigsaw", num_permutations=12, permutation_seed=3, permutation_criterion="min")
    expected = max_hamming_permutations(12, seed=3, criterion="min")
    assert torch.equal(method.state_dict()["permutations"], expected)
    other = build("jigsaw", num_permutations=12, permutation_seed=4, permutation_criterion="min")
    other.load_state_dict(method.state_dict())  # a resumed run uses the stored set, not a new one
    assert torch.equal(other.permutations, expected)
    tiles, labels = other.make_views(torch.rand(2, 1, 28, 28), torch.Generator().manual_seed(0))
    assert tiles.shape == (2, 9, 1, 7, 7) and labels.max() < 12


def test_grid_values_can_be_set_and_are_checked_against_the_image_size():
    assert build("relative-patch", patch_size=8, gap=1).grid.patch == 8
    with pytest.raises(ValueError, match="method.patch_size"):
        build("relative-patch", patch_size=9, gap=3)
    with pytest.raises(ValueError, match="too small"):
        build("jigsaw", shape=(1, 8, 8), num_permutations=4)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="method.eval_tiling='gaps'; valid: central, training"):
        build("jigsaw", num_permutations=4, eval_tiling="gaps")
    with pytest.raises(ValueError, match="square"):
        build("rotnet", shape=(1, 28, 32))
    with pytest.raises(ValueError, match="method.mining"):
        build("exemplar", mining="hardest")
    with pytest.raises(ValueError, match="pairs_per_image"):
        build("relative-patch", pairs_per_image=9)
    with pytest.raises(ValueError, match="augment.num_views"):
        build("exemplar", augment=AugmentConfig(num_views=1))


def test_view_columns_show_what_each_pretext_task_trains_on():
    x = torch.rand(3, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    rotnet = build("rotnet")
    columns = rotnet.view_columns(x, rotnet.make_views(x, g))
    assert [c.title.split()[0] for c in columns] == ["0", "90", "180", "270"]
    torch.testing.assert_close(columns[1].images, torch.rot90(columns[0].images, 1, dims=(2, 3)))

    patch = build("relative-patch", pairs_per_image=4)
    views = patch.make_views(x, g)
    centre, neighbour = patch.view_columns(x, views)
    assert centre.images.shape == (3, 1, 6, 6) and torch.equal(neighbour.images, views[1][::4])
    assert neighbour.captions == [f"class {int(p)} {NEIGHBOUR_OFFSETS[int(p)]}" for p in views[2][::4]]

    jigsaw = build("jigsaw", num_permutations=4)
    tiles, index = jigsaw.make_views(x, g)
    columns = jigsaw.view_columns(x, (tiles, index))
    assert len(columns) == 9 and torch.equal(columns[4].images, tiles[:, 4])
    assert columns[0].captions == [f"permutation {int(k)}" for k in index] and columns[1].captions is None


def test_methods_whose_views_are_not_images_are_refused_by_show_views():
    method = build("rotnet")
    with pytest.raises(ValueError, match="show-views cannot draw"):
        super(type(method), method).view_columns(torch.rand(2, 1, 28, 28), (torch.rand(8, 1, 28, 28), torch.zeros(8)))
