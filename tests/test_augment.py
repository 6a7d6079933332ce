import pytest
import torch

from selfsup.augment import SimCLRViews, ops
from selfsup.config import AugmentConfig


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_full_crop_without_flip_is_the_identity():
    x = torch.rand(3, 1, 9, 9)
    out = ops.random_resized_crop(x, gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_prob=0.0)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_mirrors_horizontally():
    x = torch.rand(2, 3, 8, 8)
    out = ops.random_resized_crop(x, gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_prob=1.0)
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_crops_zoom_into_a_box_of_the_requested_area():
    # a small crop of a horizontal ramp spans a small range of values
    ramp = torch.linspace(0, 1, 64).repeat(64, 1).expand(16, 1, 64, 64).contiguous()
    out = ops.random_resized_crop(ramp, gen(), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    spans = out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))
    assert torch.allclose(spans, torch.full_like(spans, 0.5), atol=0.03)


def test_views_differ_per_sample_and_are_reproducible():
    x = torch.rand(1, 3, 16, 16).expand(6, 3, 16, 16).contiguous()
    views = SimCLRViews(AugmentConfig())
    a, b = views(x, gen(1))
    assert not torch.allclose(a[0], a[1]) and not torch.allclose(a, b)
    a2, _ = views(x, gen(1))
    assert torch.equal(a, a2)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1


def test_number_of_views():
    out = SimCLRViews(AugmentConfig(num_views=4))(torch.rand(2, 1, 8, 8), gen())
    assert len(out) == 4


def test_blur_keeps_constant_images_and_smooths_noise():
    flat = torch.full((4, 3, 20, 20), 0.3)
    torch.testing.assert_close(ops.gaussian_blur(flat, gen(), p=1.0, sigma=(0.5, 2.0)), flat)
    noise = torch.rand(4, 1, 20, 20)
    assert ops.gaussian_blur(noise, gen(), p=1.0, sigma=(1.5, 2.0)).std() < noise.std() * 0.7
    assert ops.blur_kernel_size(28) == 3 and ops.blur_kernel_size(224) == 23


def test_grayscale_and_jitter_on_colour_and_grey():
    x = torch.rand(5, 3, 8, 8)
    grey = ops.random_grayscale(x, gen(), p=1.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert torch.equal(ops.random_grayscale(x[:, :1], gen(), p=1.0), x[:, :1])
    for image in (x, x[:, :1]):
        out = ops.color_jitter(image, gen(), p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
        assert out.shape == image.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(ops.color_jitter(x, gen(), p=0.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), x)


def test_zero_hue_rotation_is_the_identity_and_full_turn_too():
    x = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(ops.rotate_hue(x, torch.zeros(2)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ops.rotate_hue(x, torch.ones(2)), x, atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_views_on_the_gpu():
    x = torch.rand(4, 3, 32, 32, device="cuda")
    out = SimCLRViews(AugmentConfig())(x, torch.Generator(device="cuda").manual_seed(0))
    assert out[0].device.type == "cuda"
