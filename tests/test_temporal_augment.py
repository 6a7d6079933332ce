import math

import pytest
import torch

from selfsup.augment import ops
from selfsup.augment.temporal import (
    InvariantAugment,
    PeriodicViews,
    default_frames,
    draw_speeds,
    invariant_views,
    random_offsets,
    resampled_length,
    simper_blur_kernel,
    speed_resample,
    speed_views,
)

IDENTITY = InvariantAugment(reverse_prob=0.0, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0.0,
                            blur_prob=0.0, hflip_prob=0.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_speeds_are_sorted_duplicated_and_in_range():
    speeds = draw_speeds(6, 5, (0.5, 3.0), _gen())
    assert speeds.shape == (6, 10)
    first, second = speeds[:, :5], speeds[:, 5:]
    assert torch.equal(first, second)
    assert (first[:, 1:] >= first[:, :-1]).all()
    assert ((speeds >= 0.5) & (speeds <= 3.0)).all()
    assert len(torch.unique(first)) == 30  # every clip draws its own speeds


@pytest.mark.parametrize("shape", [(3, 12, 2, 5, 4), (3, 12, 2)])
def test_speed_one_offset_zero_returns_the_input(shape):
    x = torch.rand(*shape, generator=_gen(1))
    ones, zeros = torch.ones(3, 4), torch.zeros(3, 4, dtype=torch.long)
    views = speed_resample(x, ones, zeros, 12)
    assert views.shape == (3, 4, *shape[1:])
    for v in range(4):
        assert torch.equal(views[:, v], x)
    assert torch.equal(speed_resample(x, ones, zeros + 3, 5)[:, 0], x[:, 3:8])


def test_linear_interpolation_between_frames():
    x = torch.arange(10, dtype=torch.float64).view(1, 10, 1) ** 2
    view = speed_resample(x, torch.tensor([[0.5]]), torch.tensor([[0]]), 6)[0, 0, :, 0]
    assert view.tolist() == [0.0, 0.5, 1.0, 2.5, 4.0, 6.5]  # midpoints average the neighbours


def test_resampled_length_ends_at_the_last_frame():
    assert resampled_length(150, torch.tensor([1.0, 2.0, 3.0, 1.5, 0.5])).tolist() == [150, 75, 50, 100, 299]


def test_short_views_loop():
    x = torch.randn(1, 20, 3, generator=_gen(2))
    view = speed_resample(x, torch.tensor([[3.0]]), torch.tensor([[0]]), 16)[0, 0]  # 7 frames: 0, 3, ..., 18
    assert torch.equal(view[:7], x[0, ::3])
    for j in range(16):
        assert torch.equal(view[j], view[j % 7])


@pytest.mark.parametrize("speed", [0.5, 0.8, 1.0, 1.7, 2.5])
def test_resampled_frequency_scales_with_speed(speed):
    length, frames, freq = 600, 200, 0.04  # cycles per frame
    x = torch.sin(2 * math.pi * freq * torch.arange(length, dtype=torch.float64)).view(1, length, 1)
    offsets = random_offsets(resampled_length(length, torch.tensor([[speed]])), frames, _gen(3))
    view = speed_resample(x, torch.tensor([[speed]]), offsets, frames)[0, 0, :, 0]
    spectrum = torch.fft.rfft((view - view.mean()) * torch.hann_window(frames, dtype=view.dtype), n=8192).abs()
    measured = spectrum.argmax().item() / 8192
    assert measured == pytest.approx(speed * freq, rel=0.02)


def test_offsets_stay_in_range_and_vary():
    lengths = torch.tensor([[100, 60, 50, 30]]).repeat(200, 1)
    offsets = random_offsets(lengths, 50, _gen(4))
    assert (offsets >= 0).all()
    assert (offsets[:, 0].max() == 50) and (offsets[:, 1].max() == 10)
    assert (offsets[:, 2:] == 0).all()  # exactly T or fewer frames: no room to move


def test_speed_views_shapes_and_determinism():
    x = torch.rand(2, 30, 1, 6, 6, generator=_gen(5))
    v1, s1 = speed_views(x, 3, 10, (0.5, 3.0), _gen(6))
    v2, s2 = speed_views(x, 3, 10, (0.5, 3.0), _gen(6))
    assert v1.shape == (2, 6, 10, 1, 6, 6) and s1.shape == (2, 6)
    assert torch.equal(v1, v2) and torch.equal(s1, s2)


def test_invariant_identity_settings_change_nothing_and_reverse_reverses():
    x = torch.rand(4, 7, 1, 8, 8, generator=_gen(7))
    torch.testing.assert_close(invariant_views(x, _gen(), IDENTITY), x, atol=1e-6, rtol=0)
    reverse = InvariantAugment(**{**IDENTITY.__dict__, "reverse_prob": 1.0})
    torch.testing.assert_close(invariant_views(x, _gen(), reverse), x.flip(1), atol=1e-6, rtol=0)
    signals = torch.randn(4, 7, 2, generator=_gen(8))
    assert torch.equal(invariant_views(signals, _gen(), reverse), signals.flip(1))


def test_invariant_parameters_are_shared_by_all_frames_of_a_view():
    frame = torch.rand(1, 1, 2, 40, 40, generator=_gen(9))
    clips = frame.expand(16, 6, 2, 40, 40).contiguous()  # every frame identical
    out = invariant_views(clips, _gen(10), InvariantAugment(blur_prob=1.0))
    assert out.shape == clips.shape
    assert ((out >= 0) & (out <= 1)).all()
    for t in range(1, 6):
        torch.testing.assert_close(out[:, t], out[:, 0])  # the same transform on every frame
    assert (out[1:, 0] - out[:1, 0]).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # views differ from one another


def test_signal_amplitude_scale_is_per_view():
    signals = torch.ones(64, 5, 1)
    out = invariant_views(signals, _gen(11), InvariantAugment(brightness=0.3))
    per_view = out[:, :, 0]
    assert torch.equal(per_view, per_view[:, :1].expand_as(per_view))
    assert per_view.min() >= 0.7 and per_view.max() <= 1.3 and per_view.std() > 0.05


def test_blur_kernel_follows_the_original_and_gaussian_blur_accepts_it():
    assert [simper_blur_kernel(s) for s in (28, 40, 64, 112)] == [1, 3, 3, 5]
    x = torch.rand(2, 3, 9, 9, generator=_gen(12))
    assert ops.gaussian_blur(x, _gen(), 1.0, (1.0, 1.0), kernel_size=5).shape == x.shape
    with pytest.raises(ValueError, match="odd"):
        ops.gaussian_blur(x, _gen(), 1.0, (1.0, 1.0), kernel_size=4)


def test_periodic_views_module_on_clips_and_signals():
    views = PeriodicViews(num_speeds=4, speed_range=(0.5, 3.0))
    clips = torch.rand(2, 30, 1, 8, 8, generator=_gen(13))
    out, speeds = views(clips, _gen(14))
    assert out.shape == (2, 8, default_frames(30, (0.5, 3.0)), 1, 8, 8) == (2, 8, 10, 1, 8, 8)
    assert torch.equal(speeds[:, :4], speeds[:, 4:])
    signals = torch.randn(3, 100, 2, generator=_gen(15))
    out, speeds = PeriodicViews(num_speeds=2, frames=40)(signals, _gen(16))
    assert out.shape == (3, 4, 40, 2) and speeds.shape == (3, 4)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="speed range"):
        draw_speeds(2, 3, (0.0, 2.0), _gen())
    with pytest.raises(ValueError, match=r"\[N, T, C, H, W\]"):
        invariant_views(torch.rand(2, 3, 4, 4), _gen(), InvariantAugment())


def test_pair_views_are_same_speed_crops_of_half_the_sequence():
    from selfsup.augment.temporal import TemporalPairViews

    ramp = torch.arange(40, dtype=torch.float32).view(1, 40, 1).repeat(8, 1, 1)
    plain = InvariantAugment(**{**IDENTITY.__dict__})
    v1, v2 = TemporalPairViews(invariant=plain)(ramp, _gen(17))
    assert v1.shape == v2.shape == (8, 20, 1)
    for v in (v1, v2):  # speed 1: consecutive frames of the input, from a random start
        assert torch.equal(v[:, 1:] - v[:, :-1], torch.ones(8, 19, 1))
    assert not torch.equal(v1[:, 0], v2[:, 0])
    assert TemporalPairViews(frames=7)(torch.rand(2, 30, 1, 4, 4), _gen())[0].shape == (2, 7, 1, 4, 4)
