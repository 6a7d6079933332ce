"""Multi-crop views (selfsup.augment.multicrop), solarisation, per-view augmentation settings,
and the old two-view pipeline left as it was."""
import pytest
import torch

from selfsup.augment import MultiCropViews, SimCLRViews, ops
from selfsup.config import AugmentConfig, ConfigError
from selfsup.config.schema import ModelConfig
from selfsup.methods import MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n, channels=3, h=28, w=28, seed=1):
    return torch.rand(n, channels, h, w, generator=gen(seed))


# only the per-view probability under test: no jitter, greyscale, flip; full-image crops
PLAIN = dict(jitter_prob=0.0, grayscale_prob=0.0, hflip_prob=0.0, blur_prob=0.0, crop_ratio=[1.0, 1.0],
             global_crop_scale=[1.0, 1.0], crop_scale=[1.0, 1.0])


def test_crop_counts_and_sizes():
    x = images(3)
    assert [v.shape for v in MultiCropViews(AugmentConfig())(x, gen())] == [x.shape] * 2
    views = MultiCropViews(AugmentConfig(num_local_crops=3))(x, gen())
    assert [tuple(v.shape[-2:]) for v in views] == [(28, 28)] * 2 + [(12, 12)] * 3  # round(28 * 96 / 224)
    sized = MultiCropViews(AugmentConfig(num_global_crops=1, global_crop_size=24, num_local_crops=2, local_crop_size=10))
    assert [tuple(v.shape) for v in sized(x, gen())] == [(3, 3, 24, 24)] + [(3, 3, 10, 10)] * 2
    wide = MultiCropViews(AugmentConfig(num_local_crops=1))
    assert wide.crop_sizes((20, 30)) == [(20, 30), (20, 30), (9, 13)]
    assert wide.crop_sizes((224, 224)) == [(224, 224)] * 2 + [(96, 96)]
    for view in views:
        assert view.dtype == x.dtype and float(view.min()) >= 0 and float(view.max()) <= 1


def test_bad_multicrop_settings_are_named():
    for kwargs, key in [({"num_global_crops": 0}, "num_global_crops"), ({"local_crop_size": 0}, "local_crop_size"),
                        ({"global_crop_scale": [0.5, 0.2]}, "global_crop_scale"),
                        ({"local_crop_scale": [0.0, 0.4]}, "local_crop_scale")]:
        with pytest.raises(ConfigError, match=key):
            MultiCropViews(AugmentConfig(**kwargs))


def test_parameters_differ_per_sample_and_are_reproducible_from_the_generator():
    x = images(1).expand(6, -1, -1, -1).contiguous()  # one image six times
    views = MultiCropViews(AugmentConfig(num_local_crops=2))
    first = views(x, gen(3))
    for crop in first:
        assert all(not torch.allclose(crop[0], crop[i]) for i in range(1, 6))
    assert all(torch.equal(a, b) for a, b in zip(first, views(x, gen(3))))
    assert all(not torch.allclose(a, b) for a, b in zip(first, views(x, gen(4))))


def slow_solarize(image: torch.Tensor) -> torch.Tensor:
    """x -> 1 - x where x >= 0.5, pixel by pixel in float64."""
    out = image.double().clone()
    flat = out.view(-1)
    for i in range(flat.numel()):
        if flat[i] >= 0.5:
            flat[i] = 1.0 - flat[i]
    return out


def test_solarisation_against_a_slow_reference():
    x = torch.cat([torch.tensor([0.0, 0.25, 0.4999, 0.5, 0.75, 1.0]).repeat(2, 1, 3, 1), images(2, 1, 3, 6)])
    out = ops.solarize(x, gen(), p=1.0)
    torch.testing.assert_close(out.double(), slow_solarize(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 0.25, 0.4999, 0.5, 0.25, 0.0]))
    assert torch.equal(ops.solarize(x, gen(), p=0.0), x)
    many = images(400, 1, 4, 4)
    half = ops.solarize(many, gen(), p=0.5)
    solarized = [torch.allclose(half[i].double(), slow_solarize(many[i]), atol=1e-6) for i in range(400)]
    kept = [torch.equal(half[i], many[i]) for i in range(400)]
    assert all(s != k for s, k in zip(solarized, kept))  # each sample is one or the other, whole
    assert 160 < sum(solarized) < 240


@pytest.mark.parametrize("scale,ratio", [((0.05, 0.4), (3 / 4, 4 / 3)), ((0.4, 1.0), (3 / 4, 4 / 3)),
                                         ((1.0, 1.0), (1 / 4, 4)), ((0.9, 1.0), (1 / 3, 3))])
def test_crop_boxes_stay_within_the_image(scale, ratio):
    width, height, cx, cy = ops.crop_boxes(5000, gen(), scale, ratio, "cpu")
    assert float((cx.abs() + width).max()) <= 1 + 1e-6 and float((cy.abs() + height).max()) <= 1 + 1e-6
    inside = (width < 1) & (height < 1)  # not shrunk to fit: the area fraction is the one drawn
    area = (width * height)[inside]
    assert bool(((area >= scale[0] - 1e-6) & (area <= scale[1] + 1e-6)).all())
    assert bool((torch.maximum(width, height)[~inside] == 1).all())  # shrunk ones span the image one way


def test_local_crops_sample_inside_the_image():
    # a crop of a linear ramp stays linear only if none of its samples left the image (the
    # reflection padding would fold the ramp back); 8 px crops of boxes >= 10 px a side sample
    # between pixel centres only
    ramp = torch.linspace(0, 1, 56).expand(200, 1, 56, 56).contiguous()
    cfg = AugmentConfig(**{**PLAIN, "crop_ratio": [3 / 4, 4 / 3]}, num_local_crops=2, local_crop_size=8,
                        local_crop_scale=[0.05, 0.4])
    crops = MultiCropViews(cfg)(ramp, gen())
    for crop in crops[2:]:
        steps = crop[:, 0].diff(dim=-1)  # [N, 8, 7]
        torch.testing.assert_close(steps, steps[..., :1].expand_as(steps), atol=1e-5, rtol=0)
        assert bool((steps > 0).all())
    # each kind of crop has its own scale: a local box is at most sqrt(0.4 * 4 / 3) = 0.73 of the
    # image wide, a global one (scale 1) at least sqrt(3 / 4) = 0.87
    span = [c.amax(dim=(1, 2, 3)) - c.amin(dim=(1, 2, 3)) for c in crops]
    assert all(bool((s > 0.8).all()) for s in span[:2]) and all(bool((s < 0.73).all()) for s in span[2:])


def test_per_view_settings_apply_to_their_view():
    x = 0.6 + 0.4 * images(4)  # bright: solarised pixels fall below 0.5
    cfg = AugmentConfig(**PLAIN, num_local_crops=2, local_crop_scale=[1.0, 1.0], local_crop_size=28,
                        view_blur_prob=[1.0, 0.0, 0.0], view_solarize_prob=[0.0, 1.0], solarize_prob=0.0)
    blurred, solarized, local_plain, local_shared = MultiCropViews(cfg)(x, gen())
    torch.testing.assert_close(solarized, 1 - x, atol=1e-5, rtol=0)
    torch.testing.assert_close(local_plain, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(local_shared, x, atol=1e-5, rtol=0)  # past the lists: blur_prob = solarize_prob = 0
    assert float(blurred.min()) >= 0.6 - 1e-5 and blurred.diff(dim=-1).std() < 0.7 * x.diff(dim=-1).std()
    # the same settings in the two-view pipeline: view 1 blurred, view 2 solarised
    one, two = SimCLRViews(AugmentConfig(**PLAIN, view_blur_prob=[1.0], view_solarize_prob=[0.0, 1.0]))(x, gen())
    torch.testing.assert_close(two, 1 - x, atol=1e-5, rtol=0)
    assert float(one.min()) >= 0.6 - 1e-5 and one.diff(dim=-1).std() < 0.7 * x.diff(dim=-1).std()
    shared = SimCLRViews(AugmentConfig(**{**PLAIN, "blur_prob": 0.0}, solarize_prob=1.0))(x, gen())
    assert all(torch.allclose(v, 1 - x, atol=1e-5) for v in shared)


def test_bad_per_view_settings_are_named():
    with pytest.raises(ConfigError, match="view_blur_prob has 3 values but there are 2 views"):
        SimCLRViews(AugmentConfig(view_blur_prob=[1.0, 0.1, 0.5]))
    with pytest.raises(ConfigError, match="view_solarize_prob"):
        MultiCropViews(AugmentConfig(view_solarize_prob=[0.0, 1.5]))
    with pytest.raises(ConfigError, match="view_solarize_prob"):
        SimCLRViews(AugmentConfig(solarize_prob=-0.1))


FINGERPRINT_CASES = {"colour": (AugmentConfig(), 3), "grey": (AugmentConfig(), 1),
                     "byol": (AugmentConfig(crop_scale=[0.2, 1.0], blur_prob=0.0, num_views=3), 3)}
FINGERPRINTS = {  # SimCLRViews before per-view settings and solarisation existed (captured from that code)
    "colour": [
        0.463407, 0.005574, 0.436415, 0.008022, 0.455218, 0.000351, 0.483825, 0.026686,
        0.501435, -0.006298, 0.46486, 0.005698, 0.671408, -0.015529, 0.711746, -0.012283,
        0.686883, -0.018676, 0.517218, 0.000507, 0.517218, 0.000507, 0.517218, 0.000507,
        0.564589, 0.003345, 0.516769, 0.007433, 0.566838, -0.000267, 0.490591, 0.031974,
        0.51969, -0.008912, 0.462559, 0.009632, 0.501013, 0.011515, 0.501013, 0.011515,
        0.501013, 0.011515, 0.525559, 0.015903, 0.525559, 0.015903, 0.525559, 0.015903,
    ],
    "grey": [
        0.471851, 0.006872, 0.485057, 0.026069, 0.654107, -0.017059, 0.561577, 0.022989,
        0.619232, 0.009645, 0.451017, 0.073566, 0.491399, 0.019441, 0.574974, -0.010917,
    ],
    "byol": [
        0.463503, 0.004366, 0.44086, 0.008178, 0.458062, -0.001363, 0.488131, 0.027051,
        0.498854, -0.002827, 0.464517, 0.003859, 0.64325, 0.005067, 0.696135, -0.002756,
        0.642562, -0.009244, 0.51784, 0.005963, 0.51784, 0.005963, 0.51784, 0.005963,
        0.635549, 0.001317, 0.587263, 0.030395, 0.613408, 0.044052, 0.625584, 0.01894,
        0.695744, 0.019282, 0.557533, 0.021632, 0.329772, 0.030109, 0.37578, 0.000281,
        0.319032, 0.002428, 0.452944, 0.019371, 0.453243, -0.009135, 0.44274, 0.007657,
        0.406319, 0.00226, 0.361615, 0.014007, 0.36695, 0.005322, 0.687034, -0.001994,
        0.687034, -0.001994, 0.687034, -0.001994, 0.582816, 0.027831, 0.642448, 0.021138,
        0.61833, -0.00818, 0.335658, -0.000825, 0.33963, -0.022099, 0.343638, 0.008304,
    ],
}


@pytest.mark.parametrize("case", sorted(FINGERPRINT_CASES))
def test_existing_views_are_unchanged(case):
    cfg, channels = FINGERPRINT_CASES[case]
    x = torch.rand(4, 3, 12, 12, generator=gen(123))[:, :channels]
    views = SimCLRViews(cfg)(x, gen(0))
    weights = torch.linspace(-1, 1, 144).view(1, 1, 12, 12)
    found = torch.stack([torch.stack([v.mean((2, 3)), (v * weights).mean((2, 3))], -1) for v in views]).flatten()
    torch.testing.assert_close(found.double(), torch.tensor(FINGERPRINTS[case], dtype=torch.float64), atol=2e-6, rtol=0)
    # and the pipeline is still crop, jitter, greyscale, blur drawn in that order
    g, s = gen(0), cfg.jitter_strength
    for view in views:
        old = ops.random_resized_crop(x, g, tuple(cfg.crop_scale), tuple(cfg.crop_ratio), cfg.hflip_prob)
        old = ops.color_jitter(old, g, cfg.jitter_prob, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
        old = ops.random_grayscale(old, g, cfg.grayscale_prob)
        assert torch.equal(view, ops.gaussian_blur(old, g, cfg.blur_prob, tuple(cfg.blur_sigma)))


def test_show_views_takes_crops_of_any_size():
    cls, params = resolve_method_params({"name": "simclr"})
    spec = InputSpec(1, (1, 28, 28))
    method = cls(params, build_encoder(ModelConfig(width=4), spec, [0.5], [0.25]), MethodContext(spec, 10, AugmentConfig()))
    x = images(3, 1)
    views = MultiCropViews(AugmentConfig(num_local_crops=2))(x, gen())
    columns = method.view_columns(x, views)
    assert [c.title for c in columns] == ["view 1", "view 2", "view 3 (12x12)", "view 4 (12x12)"]
    assert all(c.images is v for c, v in zip(columns, views))
    with pytest.raises(ValueError, match="show-views cannot draw"):
        method.view_columns(x, [views[0][:2]])
