"""A small ResNet and its plain (VGG-style) twin, for the skip-connection experiment.

Kolesnikov, Zhai, Beyer ("Revisiting Self-Supervised Visual Representation Learning", CVPR
2019, sec. 4.2) find that with skip connections the representation keeps improving up to the
last layer, while a VGG-style network without them gets worse in its later layers when trained
on a pretext task. ``resnet-small`` and ``plainnet-small`` differ only in the identity
shortcuts: same layers, same widths, same parameters.

Each of the four stages (widths w, 2w, 4w, 8w with w = ``model.width``, as ``convnet-small``) is
a 3x3 conv-BN-ReLU that sets the width, then a basic block of two 3x3 conv-BN layers (He et al.
2016) whose input is added back before the final ReLU in ``resnet-small`` and not in
``plainnet-small``; a 2x2 max-pool follows the first three stages. feature_dim = 8w.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.config.schema import ModelConfig
from selfsup.models.encoders import InputSpec, StagedConvNet, conv_bn_relu


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN at constant width, then ReLU; ``skip`` adds the input before the ReLU."""

    def __init__(self, width: int, skip: bool):
        super().__init__()
        self.body = nn.Sequential(*conv_bn_relu(width, width), nn.Conv2d(width, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width))
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return F.relu(out + x if self.skip else out)


def small_staged_net(cfg: ModelConfig, spec: InputSpec, skip: bool) -> StagedConvNet:
    w = cfg.width
    widths = [w, 2 * w, 4 * w, 8 * w]
    stages, in_ch = [], spec.in_channels
    for k, out_ch in enumerate(widths):
        layers = conv_bn_relu(in_ch, out_ch) + [BasicBlock(out_ch, skip)]
        if k < 3:
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        stages.append((f"block{k + 1}", nn.Sequential(*layers)))
        in_ch = out_ch
    return StagedConvNet(stages, widths[-1])


def resnet_small(cfg: ModelConfig, spec: InputSpec) -> StagedConvNet:
    """convnet-small's four stages, each followed by a residual basic block (12 conv layers)."""
    return small_staged_net(cfg, spec, skip=True)


def plainnet_small(cfg: ModelConfig, spec: InputSpec) -> StagedConvNet:
    """resnet-small without its skip connections: a VGG-style stack of 12 conv layers."""
    return small_staged_net(cfg, spec, skip=False)
