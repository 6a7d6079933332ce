"""Encoders of sequences that emit one value per frame (SimPer, Yang et al., ICLR 2023).

Both map a batch of sequences to a 1-D feature series ``[N, T]`` (``series(x)``), the space
SimPer's periodic similarities compare:

- ``simper-featurizer`` (clips ``[N, T, C, H, W]``): the released code's ``networks.Featurizer``,
  Conv3D(w, 5x3x3)-BN-ReLU-MaxPool(1x2x2), Conv3D(2w, 5x3x3)-BN-ReLU-MaxPool(1x2x2),
  Conv3D(1, 1x1x1)-BN-ReLU, then the mean over each frame's pixels. The original's widths are
  64 and 128 (``model.width=64``); every convolution pads "same" in time, so T is kept.
- ``signal-conv1d`` (signals ``[N, T, C]``): our 1-D counterpart, Conv1D(w, 5)-BN-ReLU,
  Conv1D(2w, 5, dilation 2)-BN-ReLU, Conv1D(2w, 5, dilation 4)-BN-ReLU (receptive field 29
  steps), then Conv1D(1, 1)-BN. No final ReLU: with no spatial mean after it, it would clip
  half of the waveform.

The frozen feature for probes (``forward``, ``feature_dim``): the series' power spectrum,
phase invariant and of fixed size whatever T, ``|rfft(z - mean z, n = 2L)|^2`` L2-normalised,
where L is the dataset's sequence length (``InputSpec.input_shape[0]``): L + 1 bins at the
fixed frequencies k / 2L cycles per frame. A linear probe or kNN on the raw series would see
the random phase of each clip rather than its frequency; the spectrum keeps exactly what the
periodic similarities compare. ``forward_stages`` exposes the conv stages and ``series``.

The pooled clip embedding (``clip_embedding``, ``clip_dim``): the last stage before the
one-channel head (``block2`` of the featurizer, ``block3`` of the 1-D encoder) averaged over
time (and space), ``[N, C]``: the clip-level embedding a method without a per-frame output,
such as SimCLR, contrasts. ``readouts`` gives it, the series and the spectrum from one pass;
:func:`encoder_readouts` does the same for an :class:`~selfsup.models.encoders.Encoder` (raw
inputs, normalised first) whose backbone is one of these.
"""
from __future__ import annotations

import torch
from torch import nn

from selfsup.config.schema import ModelConfig
from selfsup.core.spectrum import power_spectrum
from selfsup.models.encoders import InputSpec


def spectral_feature(series: torch.Tensor, n: int) -> torch.Tensor:
    """[N, T] -> [N, n // 2 + 1]: the unit-norm power spectrum zero-padded to n points."""
    if series.shape[-1] > n:
        raise ValueError(f"a series of {series.shape[-1]} frames is longer than the encoder's spectrum "
                         f"length {n} (twice the dataset's sequence length): pass at most {n} frames")
    psd = power_spectrum(series, n)
    return psd / psd.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(psd.dtype).tiny)


class SeriesEncoder(nn.Module):
    """Named stages ending in a one-channel map, reduced to one value per frame."""

    def __init__(self, stages: list[tuple[str, nn.Module]], length: int, clip_dim: int):
        super().__init__()
        self.stages = nn.ModuleDict(dict(stages))
        self.spectrum_length = 2 * length
        self.feature_dim = length + 1
        self.clip_stage = list(self.stages)[-2]  # the stage before the one-channel head
        self.clip_dim = clip_dim  # that stage's channels

    def _to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """The input with channels on dim 1 and time on dim 2 (subclasses check the shape)."""
        raise NotImplementedError

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self._to_channels_first(x)
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        out["series"] = x.flatten(3).mean(-1).flatten(1) if x.dim() == 5 else x.flatten(1)  # [N, T]
        return out

    def series(self, x: torch.Tensor) -> torch.Tensor:
        """One value per frame: [N, T]."""
        return self.forward_stages(x)["series"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spectral_feature(self.series(x), self.spectrum_length)

    def clip_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled clip embedding [N, clip_dim]; the head is not run."""
        x = self._to_channels_first(x)
        for name, stage in self.stages.items():
            x = stage(x)
            if name == self.clip_stage:
                return x.flatten(2).mean(2)
        raise AssertionError("unreachable: clip_stage is one of the stages")

    def readouts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """From one pass: ``clip`` [N, clip_dim], ``series`` [N, T] and ``spectrum`` (``forward``'s feature)."""
        stages = self.forward_stages(x)
        return {"clip": stages[self.clip_stage].flatten(2).mean(2), "series": stages["series"],
                "spectrum": spectral_feature(stages["series"], self.spectrum_length)}


def series_backbone(encoder: nn.Module) -> SeriesEncoder | None:
    """The per-frame backbone of an :class:`~selfsup.models.encoders.Encoder`, or None when its
    backbone is of another kind."""
    backbone = getattr(encoder, "backbone", None)
    return backbone if isinstance(backbone, SeriesEncoder) else None


def encoder_readouts(encoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """:meth:`SeriesEncoder.readouts` of raw inputs through an Encoder with a per-frame backbone."""
    backbone = series_backbone(encoder)
    if backbone is None:
        raise ValueError(f"{type(getattr(encoder, 'backbone', encoder)).__name__} is not a per-frame encoder: "
                         "the clip and series readouts need model.encoder=simper-featurizer or signal-conv1d")
    return backbone.readouts(encoder.normalize(x))


class Featurizer3D(SeriesEncoder):
    """Clips [N, T, C, H, W] -> per-frame series [N, T] (see the module docstring)."""

    def __init__(self, in_channels: int, width: int, length: int):
        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(a, b, (5, 3, 3), padding=(2, 1, 1), bias=False), nn.BatchNorm3d(b),
                                 nn.ReLU(inplace=True), nn.MaxPool3d((1, 2, 2)))

        super().__init__([
            ("block1", block(in_channels, width)),
            ("block2", block(width, 2 * width)),
            ("head", nn.Sequential(nn.Conv3d(2 * width, 1, 1, bias=False), nn.BatchNorm3d(1), nn.ReLU(inplace=True))),
        ], length, 2 * width)

    def _to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"simper-featurizer takes clips [N, T, C, H, W], got shape {tuple(x.shape)}")
        return x.transpose(1, 2)  # [N, C, T, H, W]


class SignalConv1D(SeriesEncoder):
    """Signals [N, T, C] -> per-step series [N, T] (see the module docstring)."""

    def __init__(self, in_channels: int, width: int, length: int):
        def block(a: int, b: int, dilation: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(a, b, 5, padding=2 * dilation, dilation=dilation, bias=False),
                                 nn.BatchNorm1d(b), nn.ReLU(inplace=True))

        super().__init__([
            ("block1", block(in_channels, width, 1)),
            ("block2", block(width, 2 * width, 2)),
            ("block3", block(2 * width, 2 * width, 4)),
            ("head", nn.Sequential(nn.Conv1d(2 * width, 1, 1, bias=False), nn.BatchNorm1d(1))),
        ], length, 2 * width)

    def _to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"signal-conv1d takes signals [N, T, C], got shape {tuple(x.shape)}")
        return x.transpose(1, 2)  # [N, C, T]


def _check_kind(name: str, spec: InputSpec, kind: str) -> None:
    if spec.kind != kind:
        raise ValueError(f"model.encoder={name} is for {kind}s, but the dataset holds {spec.kind}s; "
                         f"use {'simper-featurizer' if spec.kind == 'clip' else 'signal-conv1d' if spec.kind == 'signal' else 'convnet-small'}")


def simper_featurizer(cfg: ModelConfig, spec: InputSpec) -> Featurizer3D:
    """SimPer's 3-D conv featurizer for clips: one value per frame (widths w, 2w; w = model.width,
    the original 64); feature_dim = clip length + 1 (the series' power spectrum)."""
    _check_kind("simper-featurizer", spec, "clip")
    return Featurizer3D(spec.in_channels, cfg.width, spec.input_shape[0])


def signal_conv1d(cfg: ModelConfig, spec: InputSpec) -> SignalConv1D:
    """Dilated 1-D conv encoder for signals: one value per step (widths w, 2w, 2w);
    feature_dim = signal length + 1 (the series' power spectrum)."""
    _check_kind("signal-conv1d", spec, "signal")
    return SignalConv1D(spec.in_channels, cfg.width, spec.input_shape[0])
