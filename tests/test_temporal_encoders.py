import math

import pytest
import torch

from selfsup.config.schema import ModelConfig
from selfsup.models import ENCODERS, InputSpec, build_encoder
from selfsup.models.temporal import spectral_feature


def _clip_encoder(length=12, width=4, channels=1, size=12):
    spec = InputSpec(channels, (length, channels, size, size), "clip")
    return build_encoder(ModelConfig(encoder="simper-featurizer", width=width), spec, [0.5] * channels, [0.25] * channels)


def _signal_encoder(length=40, width=4, channels=2):
    spec = InputSpec(channels, (length, channels), "signal")
    return build_encoder(ModelConfig(encoder="signal-conv1d", width=width), spec, [0.0] * channels, [1.0] * channels)


def test_featurizer_emits_one_value_per_frame_for_any_length():
    torch.manual_seed(0)
    encoder = _clip_encoder()
    for t in (5, 12, 20):
        x = torch.rand(3, t, 1, 12, 12)
        assert encoder.forward_stages(x)["series"].shape == (3, t)
        assert encoder(x).shape == (3, encoder.feature_dim) == (3, 13)
    stages = encoder.forward_stages(torch.rand(2, 7, 1, 12, 12))
    assert stages["block1"].shape == (2, 4, 7, 6, 6) and stages["block2"].shape == (2, 8, 7, 3, 3)


def test_a_static_clip_gives_a_constant_series_away_from_the_edges():
    torch.manual_seed(1)
    encoder = _clip_encoder().eval()
    frame = torch.rand(1, 1, 1, 12, 12)
    series = encoder.forward_stages(frame.expand(1, 16, 1, 12, 12))["series"][0]
    # temporal receptive field 9: beyond 4 frames from the zero-padded ends every frame sees the same
    assert torch.allclose(series[4:-4], series[4:5].expand(8), atol=1e-6)
    assert not torch.allclose(series[0], series[4], atol=1e-6)


def test_signal_encoder_shapes_and_receptive_field():
    torch.manual_seed(2)
    encoder = _signal_encoder().eval()
    x = torch.randn(2, 40, 2)
    assert encoder.forward_stages(x)["series"].shape == (2, 40)
    assert encoder(x).shape == (2, 41)
    # the output at step 20 depends on inputs 20 +- 14 only (receptive field 29)
    x2 = x.clone()
    x2[:, 35:] += 5.0
    diff = (encoder.forward_stages(x2)["series"] - encoder.forward_stages(x)["series"]).abs()[0]
    assert diff[:21].max() == 0 and diff[21:].max() > 0


def test_spectral_feature_is_phase_invariant_unit_norm_and_peaks_at_the_frequency():
    t = torch.arange(64, dtype=torch.float64)
    a = torch.sin(2 * math.pi * 0.125 * t)
    b = 3 * torch.sin(2 * math.pi * 0.125 * t + 1.3)
    fa, fb = spectral_feature(torch.stack([a, b]), 128)
    assert fa.norm().item() == pytest.approx(1.0)
    assert torch.dot(fa, fb).item() > 0.99
    assert fa.argmax().item() == 16  # 0.125 cycles per frame = bin 16 of 128
    with pytest.raises(ValueError, match="longer than"):
        spectral_feature(torch.randn(2, 200), 128)


def test_encoders_refuse_the_wrong_kind_of_data():
    image_spec = InputSpec(1, (1, 8, 8), "image")
    with pytest.raises(ValueError, match="for clips"):
        ENCODERS.get("simper-featurizer")(ModelConfig(), image_spec)
    with pytest.raises(ValueError, match="use simper-featurizer"):
        ENCODERS.get("signal-conv1d")(ModelConfig(), InputSpec(1, (10, 1, 8, 8), "clip"))
    with pytest.raises(ValueError, match=r"\[N, T, C\]"):
        _signal_encoder().backbone(torch.randn(2, 3, 4, 5))


def test_gradients_reach_every_parameter():
    torch.manual_seed(3)
    for encoder, x in ((_clip_encoder(), torch.rand(4, 10, 1, 12, 12)), (_signal_encoder(), torch.randn(4, 30, 2))):
        encoder.forward_stages(x)["series"].pow(2).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
