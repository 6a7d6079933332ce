import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from selfsup.config.schema import DataConfig
from selfsup.data import DATASETS, build_data
from selfsup.data.rotcolor import (
    ACTION_FACTORS,
    BACKGROUND_SATURATION,
    BACKGROUND_VALUE,
    DIGIT_SATURATION,
    DIGIT_VALUE,
    VIEWS_PER_OBJECT,
    absolute_params,
    hsv_to_rgb,
    recorded_params,
    recorded_views,
    relative_action,
    render,
)


@pytest.fixture(scope="module")
def raw():
    return DATASETS.get("rotcolor-mnist").build(DataConfig(name="rotcolor-mnist"), 0)


def test_hsv_to_rgb_known_colours():
    hues = torch.tensor([0.0, 1 / 3, 2 / 3, 1 / 6, 0.5])
    expected = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]])
    torch.testing.assert_close(hsv_to_rgb(hues, 1.0, 1.0), expected)
    torch.testing.assert_close(hsv_to_rgb(hues, 0.0, 0.6), torch.full((5, 3), 0.6))
    torch.testing.assert_close(hsv_to_rgb(torch.tensor([0.0]), 0.6, 0.6), torch.tensor([[0.6, 0.24, 0.24]]))


def test_upright_view_colours_the_canonical_digit():
    canvas = torch.rand(3, 1, 8, 8)
    h_f, h_b = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.3, 0.7, 0.0])
    views = render(canvas, torch.zeros(3), h_f, h_b)
    digit = hsv_to_rgb(h_f, DIGIT_SATURATION, DIGIT_VALUE).view(3, 3, 1, 1)
    background = hsv_to_rgb(h_b, BACKGROUND_SATURATION, BACKGROUND_VALUE).view(3, 3, 1, 1)
    torch.testing.assert_close(views, canvas * digit + (1 - canvas) * background)


def test_a_quarter_turn_is_an_exact_pixel_rotation():
    canvas = torch.rand(1, 1, 8, 8)
    views = render(canvas, torch.tensor([math.pi / 2]), torch.tensor([0.0]), torch.tensor([0.0]))
    white_on_black = render(torch.rot90(canvas, k=1, dims=(2, 3)), torch.zeros(1), torch.tensor([0.0]), torch.tensor([0.0]))
    torch.testing.assert_close(views, white_on_black, atol=1e-5, rtol=0)


def test_samples_are_canonical_digits_with_recorded_views(raw):
    assert len(raw.train) + len(raw.test) == 5000 and raw.num_classes == 10
    x = raw.train.load(torch.arange(4))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # white on black
    for name in ("theta", "digit_hue", "background_hue"):
        assert raw.train.targets[name].shape == (len(raw.train), VIEWS_PER_OBJECT)
    theta = raw.train.targets["theta"]
    assert theta.abs().max() <= math.pi / 2 and theta.std() > 0.8
    assert 0 <= raw.train.targets["digit_hue"].min() and raw.train.targets["digit_hue"].max() < 1
    assert raw.info["action_factors"] == ACTION_FACTORS


def test_recorded_views_show_their_recorded_parameters(raw):
    index = torch.arange(0, 400, 40)
    views = recorded_views(raw.train, index).float() / 255  # [10, K, 3, S, S]
    params = recorded_params(raw.train, index)
    canonical = raw.train.load(index)[:, 0].float().numpy() / 255
    digit = hsv_to_rgb(params["digit_hue"], DIGIT_SATURATION, DIGIT_VALUE)  # [10, K, 3]
    background = hsv_to_rgb(params["background_hue"], BACKGROUND_SATURATION, BACKGROUND_VALUE)
    # corners are background
    torch.testing.assert_close(views[..., 0, 0], background, atol=1 / 255, rtol=0)
    for i in range(len(index)):
        for k in range(0, VIEWS_PER_OBJECT, 5):
            # intensity from the colours, then the digit rotated by the recorded angle (scipy, independent)
            d, b = digit[i, k].view(3, 1, 1), background[i, k].view(3, 1, 1)
            intensity = ((views[i, k] - b) * (d - b)).sum(0) / ((d - b) ** 2).sum()
            degrees = float(params["theta"][i, k]) * 180 / math.pi
            right = ndimage.rotate(canonical[i], degrees, reshape=False, order=1)
            wrong = ndimage.rotate(canonical[i], -degrees, reshape=False, order=1)
            err_right = np.abs(intensity.numpy() - right).mean()
            assert err_right < 0.01
            if abs(degrees) > 20:
                assert err_right < 0.5 * np.abs(intensity.numpy() - wrong).mean()


def test_actions_follow_from_the_recorded_parameters(raw):
    index = torch.arange(6)
    params = recorded_params(raw.train, index)
    first = {k: v[:, 0] for k, v in params.items()}
    second = {k: v[:, 3] for k, v in params.items()}
    third = {k: v[:, 7] for k, v in params.items()}
    a12, a23, a13 = relative_action(first, second), relative_action(second, third), relative_action(first, third)
    dtheta = params["theta"][:, 3] - params["theta"][:, 0]
    torch.testing.assert_close(a12[:, 0], torch.cos(dtheta))
    torch.testing.assert_close(a12[:, 1], torch.sin(dtheta))
    torch.testing.assert_close(a12[:, 2], params["digit_hue"][:, 3] - params["digit_hue"][:, 0])
    torch.testing.assert_close(a12[:, 3], params["background_hue"][:, 3] - params["background_hue"][:, 0])
    # actions compose: rotations add (angle addition), hue differences add
    composed_cos = a12[:, 0] * a23[:, 0] - a12[:, 1] * a23[:, 1]
    composed_sin = a12[:, 1] * a23[:, 0] + a12[:, 0] * a23[:, 1]
    torch.testing.assert_close(torch.stack([composed_cos, composed_sin], 1), a13[:, :2])
    torch.testing.assert_close(a12[:, 2:] + a23[:, 2:], a13[:, 2:])
    # from a view to itself: no rotation, no hue change
    torch.testing.assert_close(relative_action(first, first), torch.tensor([[1.0, 0, 0, 0]]).expand(6, 4))
    absolute = absolute_params(second)
    torch.testing.assert_close(absolute[:, 0], torch.cos(params["theta"][:, 3]))
    torch.testing.assert_close(absolute[:, 3], params["background_hue"][:, 3])


def test_seeded_and_objects_disjoint_across_splits():
    cfg = DataConfig(name="rotcolor-mnist", limit=600, val_fraction=0.1)
    a, b, c = build_data(cfg, 0), build_data(cfg, 0), build_data(cfg, 1)
    assert torch.equal(a.train.targets["theta"], b.train.targets["theta"])
    assert not torch.equal(a.train.targets["theta"], c.train.targets["theta"])
    flat = {name: split.load(torch.arange(len(split))).flatten(1) for name, split in
            (("train", a.pretrain), ("test", a.test))}
    hashes = {name: {hash(row.numpy().tobytes()) for row in x} for name, x in flat.items()}
    assert not hashes["train"] & hashes["test"]
    val = {hash(row.numpy().tobytes()) for row in a.val.load(torch.arange(len(a.val))).flatten(1)}
    # the validation objects are part of train, with their labels hidden in pretrain
    assert val <= hashes["train"] and not val & hashes["test"]
    assert a.kind == "image" and a.in_channels == 3


@pytest.mark.parametrize("size", [28, 40])
def test_canvas_size_follows_data_image_size(size):
    raw = DATASETS.get("rotcolor-mnist").build(DataConfig(name="rotcolor-mnist", image_size=size), 0)
    assert raw.train.load(torch.tensor([0])).shape == (1, 3, size, size)
    assert recorded_views(raw.train, torch.tensor([0])).shape == (1, VIEWS_PER_OBJECT, 3, size, size)


def test_views_need_recorded_parameters():
    raw = DATASETS.get("digits").build(DataConfig(name="digits"), 0)
    with pytest.raises(ValueError, match="rotcolor-mnist"):
        recorded_views(raw.train, torch.tensor([0]))
