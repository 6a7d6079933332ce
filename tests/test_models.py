import importlib.util

import pytest
import torch

from selfsup.config import ModelConfig
from selfsup.models import InputSpec, MLPHead, build_encoder, export_encoder, load_encoder


@pytest.mark.parametrize("name,dim", [("convnet-small", 256), ("resnet18", 512)])
@pytest.mark.parametrize("channels", [1, 3])
def test_encoders_take_any_channel_count(name, dim, channels):
    encoder = build_encoder(ModelConfig(encoder=name), InputSpec(channels, (channels, 28, 28)), [0.5] * channels,
                            [0.25] * channels)
    assert encoder(torch.rand(2, channels, 28, 28)).shape == (2, dim) and encoder.feature_dim == dim


def test_cifar_stem_keeps_resolution():
    spec = InputSpec(3, (3, 32, 32))
    small = build_encoder(ModelConfig(encoder="resnet18", cifar_stem=True), spec, [0.5] * 3, [0.25] * 3)
    imagenet = build_encoder(ModelConfig(encoder="resnet18", cifar_stem=False), spec, [0.5] * 3, [0.25] * 3)
    x = torch.rand(2, 3, 32, 32)
    assert small.forward_stages(x)["layer4"].shape[-1] == 4 and imagenet.forward_stages(x)["layer4"].shape[-1] == 1


def test_unknown_encoder_lists_names():
    with pytest.raises(KeyError, match="convnet-small"):
        build_encoder(ModelConfig(encoder="convnet-smal"), InputSpec(1, (1, 8, 8)), [0.5], [0.25])


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed (pip install 'selfsup[timm]')")
def test_timm_encoder():
    encoder = build_encoder(ModelConfig(encoder="timm:resnet10t"), InputSpec(1, (1, 32, 32)), [0.5], [0.25])
    assert encoder(torch.rand(2, 1, 32, 32)).shape == (2, encoder.feature_dim)


def test_normalisation_is_part_of_the_encoder(tmp_path):
    spec = InputSpec(1, (1, 8, 8))
    encoder = build_encoder(ModelConfig(), spec, [0.3], [0.2]).eval()
    path = export_encoder(encoder, ModelConfig(), spec, tmp_path / "encoder.safetensors")
    loaded = load_encoder(tmp_path)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), encoder(x))
    assert path.exists() and float(loaded.mean) == pytest.approx(0.3)


def test_load_encoder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.safetensors"):
        load_encoder(tmp_path)
    (tmp_path / "encoder.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a selfsup encoder"):
        load_encoder(tmp_path)


def test_mlp_head_layout():
    head = MLPHead([8, 16, 4])
    kinds = [type(m).__name__ for m in head.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"] and head(torch.rand(5, 8)).shape == (5, 4)
    with pytest.raises(ValueError):
        MLPHead([8])
