"""The ViT encoders (selfsup.models.vit): the patch-size rule, shapes at several image and patch
sizes, token masking, the frozen patch projection, registers, per-layer stages, export."""
import pytest
import torch

from selfsup.config.schema import ModelConfig
from selfsup.eval.layers import PooledStages
from selfsup.models import ENCODERS, InputSpec, build_encoder, export_encoder, load_encoder
from selfsup.models.vit import ViTEncoder, auto_patch_size

WIDTH, DEPTH, HEADS = 32, 2, 2  # a small ViT for the behaviour tests; the registered sizes are checked apart


def small_vit(image=(16, 16), patch=4, registers=0, channels=1):
    torch.manual_seed(0)
    return ViTEncoder(channels, image, patch, WIDTH, DEPTH, HEADS, registers=registers)


def images(n, channels=1, h=16, w=16, seed=1):
    return torch.rand(n, channels, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("side,patch", [(8, 2), (16, 2), (17, 4), (28, 4), (32, 4), (33, 8), (64, 8), (96, 8),
                                        (112, 8), (113, 16), (224, 16), (384, 16)])
def test_the_patch_size_rule(side, patch):
    assert auto_patch_size(side) == patch
    assert 4 <= side // patch <= 24


@pytest.mark.parametrize("name,width,heads", [("vit-tiny", 192, 3), ("vit-small", 384, 6)])
def test_registered_sizes(name, width, heads):
    encoder = build_encoder(ModelConfig(encoder=name), InputSpec(1, (1, 8, 8)), [0.5], [0.25])
    vit = encoder.backbone
    assert encoder.feature_dim == width and len(vit.blocks) == 12
    assert all(b.num_heads == heads and b.mlp[0].out_features == 4 * width for b in vit.blocks)
    with torch.no_grad():
        assert encoder(torch.rand(2, 1, 8, 8)).shape == (2, width)


@pytest.mark.parametrize("shape,patch,override", [((1, 8, 8), 2, None), ((1, 28, 28), 4, None), ((3, 32, 32), 4, None),
                                                  ((3, 28, 28), 7, 7), ((3, 20, 36), 4, None), ((3, 96, 96), 8, None)])
def test_shapes_at_several_image_and_patch_sizes(shape, patch, override):
    built = ENCODERS.get("vit-tiny")(ModelConfig(encoder="vit-tiny", patch_size=override), InputSpec(shape[0], shape))
    grid = (shape[1] // patch, shape[2] // patch)
    assert (built.patch_size, built.grid_size, built.num_patches) == (patch, grid, grid[0] * grid[1])
    assert built.patch_embed.kernel_size == built.patch_embed.stride == (patch, patch)
    vit = small_vit(shape[1:], patch, channels=shape[0])  # the same geometry, fewer and narrower blocks
    x = torch.rand(2, *shape)
    with torch.no_grad():
        assert vit(x).shape == (2, WIDTH)
        assert vit.forward_tokens(x).shape == (2, 1 + grid[0] * grid[1], WIDTH)


def test_builder_refuses_what_a_vit_cannot_take():
    with pytest.raises(ValueError, match="patch size 32"):
        ENCODERS.get("vit-tiny")(ModelConfig(encoder="vit-tiny", patch_size=32), InputSpec(1, (1, 28, 28)))
    with pytest.raises(ValueError, match="takes images"):
        ENCODERS.get("vit-tiny")(ModelConfig(encoder="vit-tiny"), InputSpec(3, (3, 64), "signal"))
    with pytest.raises(ValueError, match="at least 4 px"):
        small_vit()(torch.rand(1, 1, 3, 16))


def test_other_input_sizes_get_resized_position_embeddings():
    vit = small_vit((16, 16), 4)
    assert torch.equal(vit.patch_pos_embed((4, 4)), vit.pos_embed[:, 1:])  # the built grid: as learnt
    # a constant embedding stays constant when resized; the grid follows the input (floor(H / p))
    with torch.no_grad():
        vit.pos_embed[:, 1:] = 0.3
    torch.testing.assert_close(vit.patch_pos_embed((2, 3)), torch.full((1, 6, WIDTH), 0.3))
    assert vit.forward_tokens(images(2, h=8, w=14)).shape == (2, 1 + 2 * 3, WIDTH)
    assert torch.isfinite(vit(images(2, h=28, w=28))).all()


def patch_pixels(keep_row: torch.Tensor, grid_w: int, patch: int, shape) -> torch.Tensor:
    """A bool [H, W]: the pixels of the patches in ``keep_row`` (row-major patch indices)."""
    mask = torch.zeros(shape, dtype=torch.bool)
    for index in keep_row.tolist():
        r, c = divmod(index, grid_w)
        mask[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = True
    return mask


@pytest.mark.parametrize("registers", [0, 2])
def test_masking_keeps_exactly_the_visible_patches(registers):
    vit = small_vit(registers=registers).eval()
    x = images(3)
    g = torch.Generator().manual_seed(0)
    keep = torch.stack([torch.randperm(16, generator=g)[:5] for _ in range(3)])
    out = vit.forward_tokens(x, keep)
    assert out.shape == (3, 1 + registers + 5, WIDTH)
    visible = torch.stack([patch_pixels(k, 4, 4, (16, 16)) for k in keep]).unsqueeze(1)
    # the masked patches' pixels change nothing; a visible patch's pixels do
    noisy = torch.where(visible, x, torch.rand_like(x))
    torch.testing.assert_close(vit.forward_tokens(noisy, keep), out, atol=1e-6, rtol=0)
    assert not torch.allclose(vit.forward_tokens(torch.where(visible, 1 - x, x), keep), out)
    # keep = every patch is the unmasked forward; the indices pick tokens after their position
    # embedding is added: reordering keep reorders the patch outputs and nothing else
    everything = torch.arange(16).expand(3, 16)
    torch.testing.assert_close(vit.forward_tokens(x, everything), vit.forward_tokens(x), atol=1e-5, rtol=0)
    flipped = vit.forward_tokens(x, keep.flip(1))
    prefix = 1 + registers
    torch.testing.assert_close(flipped[:, prefix:], out[:, prefix:].flip(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(flipped[:, :prefix], out[:, :prefix], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="keep must be a LongTensor"):
        vit.forward_tokens(x, keep.float())
    with pytest.raises(ValueError, match="keep must be a LongTensor"):
        vit.forward_tokens(x, keep[:2])


def test_gradient_flows_only_through_the_visible_patches():
    vit = small_vit().train()
    x = images(2).requires_grad_(True)
    keep = torch.tensor([[0, 5, 15], [3, 4, 9]])
    vit.forward_tokens(x, keep).square().sum().backward()
    visible = torch.stack([patch_pixels(k, 4, 4, (16, 16)) for k in keep]).unsqueeze(1)
    assert torch.all(x.grad[~visible] == 0)
    per_patch = x.grad.abs().unfold(2, 4, 4).unfold(3, 4, 4).sum((-1, -2)).flatten(1)  # [N, 16]
    assert all(bool((per_patch[i, k] > 0).all()) for i, k in enumerate(keep))
    pos_grad = vit.pos_embed.grad[0, 1:].abs().sum(1)  # position embeddings of masked patches get none
    for i in range(16):
        assert (pos_grad[i] > 0) == bool((keep == i).any())


def test_a_frozen_patch_embedding_gets_no_gradient():
    vit = small_vit().freeze_patch_embed()
    vit(images(2)).sum().backward()
    assert all(not p.requires_grad and p.grad is None for p in vit.patch_embed.parameters())
    others = [p for name, p in vit.named_parameters() if not name.startswith("patch_embed")]
    assert others and all(p.grad is not None for p in others)
    encoder = build_encoder(ModelConfig(encoder="vit-tiny"), InputSpec(1, (1, 8, 8)), [0.5], [0.25])
    encoder.backbone.freeze_patch_embed()
    assert sum(p.requires_grad for p in encoder.parameters()) == sum(1 for _ in encoder.parameters()) - 2


def test_registers_sit_between_the_class_token_and_the_patches():
    vit = small_vit(registers=3)
    assert vit.register_tokens.shape == (1, 3, WIDTH) and vit.num_prefix_tokens == 4
    assert small_vit().register_tokens is None
    x = images(2)
    tokens = vit.with_prefix(vit.embed_patches(x)[0])
    assert tokens.shape == (2, 4 + 16, WIDTH)
    torch.testing.assert_close(tokens[:, 1:4], vit.register_tokens.expand(2, -1, -1))  # no position embedding
    torch.testing.assert_close(tokens[:, 0], (vit.cls_token + vit.pos_embed[:, :1])[0].expand(2, -1))
    out = vit.forward_tokens(x)
    torch.testing.assert_close(vit(x), out[:, 0])
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_per_layer_stages_are_patch_maps_then_the_class_token():
    vit = small_vit(registers=1).eval()
    x = images(3)
    stages = vit.forward_stages(x)
    assert list(stages) == [f"block{i}" for i in range(1, DEPTH + 1)] + ["cls"]
    assert all(stages[f"block{i}"].shape == (3, WIDTH, 4, 4) for i in range(1, DEPTH + 1))
    torch.testing.assert_close(stages["cls"], vit(x))
    # the last map holds the patch tokens in grid order, before the final norm
    last = stages[f"block{DEPTH}"].flatten(2).transpose(1, 2)
    torch.testing.assert_close(vit.norm(last), vit.forward_tokens(x)[:, 2:], atol=1e-5, rtol=0)
    # the per-layer probe pools each map to the mean patch token
    pooled = PooledStages(vit)(x)
    assert pooled.shape == (3, (DEPTH + 1) * WIDTH)
    torch.testing.assert_close(pooled[:, (DEPTH - 1) * WIDTH:DEPTH * WIDTH], last.mean(1))


def test_channels_last_inputs_and_weights_give_the_same_features():
    spec = InputSpec(3, (3, 16, 16))
    torch.manual_seed(0)
    fast = build_encoder(ModelConfig(encoder="vit-tiny", channels_last=True), spec, [0.5] * 3, [0.25] * 3).eval()
    torch.manual_seed(0)
    plain = build_encoder(ModelConfig(encoder="vit-tiny", channels_last=False), spec, [0.5] * 3, [0.25] * 3).eval()
    assert fast.backbone.patch_embed.weight.is_contiguous(memory_format=torch.channels_last)
    x = images(2, 3)
    with torch.no_grad():
        torch.testing.assert_close(fast(x.to(memory_format=torch.channels_last)), plain(x), atol=1e-5, rtol=0)


def test_encoder_wrapper_normalises_before_the_tokens():
    encoder = build_encoder(ModelConfig(encoder="vit-tiny"), InputSpec(1, (1, 8, 8)), [0.5], [0.25]).eval()
    x, keep = images(2, h=8, w=8), torch.tensor([[0, 1], [2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(encoder.forward_tokens(x, keep), encoder.backbone.forward_tokens((x - 0.5) / 0.25, keep))
    convnet = build_encoder(ModelConfig(width=4), InputSpec(1, (1, 8, 8)), [0.5], [0.25])
    with pytest.raises(ValueError, match="token masking needs a ViT"):
        convnet.forward_tokens(x)


def test_a_vit_exports_to_safetensors_and_loads_back(tmp_path):
    cfg, spec = ModelConfig(encoder="vit-tiny", patch_size=4, vit_registers=2), InputSpec(1, (1, 16, 16))
    torch.manual_seed(0)
    encoder = build_encoder(cfg, spec, [0.3], [0.2])
    with torch.no_grad():
        encoder.backbone.register_tokens.add_(1.0)  # trained weights, not a fresh init
    path = export_encoder(encoder, cfg, spec, tmp_path / "encoder.safetensors")
    loaded = load_encoder(path)
    assert (loaded.backbone.patch_size, loaded.backbone.num_registers) == (4, 2) and not loaded.training
    for name, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    x = images(3)
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), encoder(x), atol=0, rtol=0)
        assert loaded.forward_tokens(x).shape == (3, 1 + 2 + 16, 192)
