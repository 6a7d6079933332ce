"""Encoders by name: a backbone that maps inputs to one feature vector per sample.

Every encoder here has ``feature_dim`` and ``forward_stages(x) -> {stage: feature map}`` (the
output of each stage, for per-layer probing). ``build_encoder`` wraps it with the input
normalisation of the training data, so an exported encoder takes raw 0..1 inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torchvision
from torch import nn

from selfsup.config.schema import ModelConfig
from selfsup.models.registry import ENCODERS


@dataclass(frozen=True)
class InputSpec:
    """What an encoder is built for: channels, one input's shape, and its kind."""

    in_channels: int
    input_shape: tuple
    kind: str = "image"  # image | clip | signal | tabular


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class StagedConvNet(nn.Module):
    """A stack of named stages followed by global average pooling."""

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], feature_dim: int):
        super().__init__()
        self.stages = nn.ModuleDict(dict(stages))
        self.feature_dim = feature_dim
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages.values():
            x = stage(x)
        return self.pool(x)


def convnet_small(cfg: ModelConfig, spec: InputSpec) -> StagedConvNet:
    """Four 3x3 conv-BN-ReLU stages of widths w, 2w, 4w, 8w (w = model.width), 2x2 max-pool
    after the first three: a fast CPU encoder for 8-64 px images (feature_dim = 8w)."""
    w = cfg.width
    widths = [w, 2 * w, 4 * w, 8 * w]
    stages, in_ch = [], spec.in_channels
    for k, out_ch in enumerate(widths):
        layers = conv_bn_relu(in_ch, out_ch)
        if k < 3:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        stages.append((f"block{k + 1}", nn.Sequential(*layers)))
        in_ch = out_ch
    return StagedConvNet(stages, widths[-1])


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its classifier; stages stem, layer1..layer4."""

    def __init__(self, net: torchvision.models.ResNet, in_channels: int, cifar_stem: bool):
        super().__init__()
        if cifar_stem:  # 3x3 stride-1 stem and no max-pool for small images (SimCLR, CIFAR)
            net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.feature_dim = net.fc.in_features
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for name in ("stem", "layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_stages(x)["layer4"])


def resnet(arch: str) -> Callable[[ModelConfig, InputSpec], ResNetEncoder]:
    def build(cfg: ModelConfig, spec: InputSpec) -> ResNetEncoder:
        small = max(spec.input_shape[-2:]) <= 64
        cifar_stem = small if cfg.cifar_stem is None else cfg.cifar_stem
        return ResNetEncoder(getattr(torchvision.models, arch)(weights=None), spec.in_channels, cifar_stem)

    build.__doc__ = f"torchvision {arch}, random init, any input channels, optional CIFAR stem."
    return build


resnet18, resnet34, resnet50 = resnet("resnet18"), resnet("resnet34"), resnet("resnet50")


class TimmEncoder(nn.Module):
    def __init__(self, name: str, in_channels: int):
        super().__init__()
        import timm

        self.net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
        self.feature_dim = self.net.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_backbone(cfg: ModelConfig, spec: InputSpec) -> nn.Module:
    if cfg.encoder.startswith("timm:"):
        try:
            return TimmEncoder(cfg.encoder.split(":", 1)[1], spec.in_channels)
        except ImportError as err:
            raise ImportError(f"model.encoder={cfg.encoder} needs timm: `pip install 'selfsup[timm]'`") from err
    return ENCODERS.get(cfg.encoder)(cfg, spec)


class Encoder(nn.Module):
    """Input normalisation followed by a backbone: raw inputs (0..1 images) in, features out."""

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float], kind: str = "image"):
        super().__init__()
        self.backbone = backbone
        self.kind = kind
        shape = (1, -1) if kind in ("signal", "tabular") else (-1, 1, 1)  # channel axis: last for signals, columns
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(*shape))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(*shape))

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not hasattr(self.backbone, "forward_stages"):
            raise ValueError(f"encoder {type(self.backbone).__name__} does not expose its stages for per-layer probing")
        return self.backbone.forward_stages(self.normalize(x))

    def forward_tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """All tokens of a token-based backbone (a ViT: :meth:`selfsup.models.vit.ViTEncoder.forward_tokens`,
        ``keep`` = indices of the visible patches) for raw inputs."""
        if not hasattr(self.backbone, "forward_tokens"):
            raise ValueError(f"encoder {type(self.backbone).__name__} has no tokens: token masking needs a ViT "
                             "(model.encoder=vit-tiny or vit-small)")
        return self.backbone.forward_tokens(self.normalize(x), keep)


def build_encoder(cfg: ModelConfig, spec: InputSpec, mean: Sequence[float], std: Sequence[float]) -> Encoder:
    encoder = Encoder(make_backbone(cfg, spec), mean, std, spec.kind)
    if cfg.channels_last and spec.kind == "image":
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder
