"""The power spectrum of a series, shared by the periodic similarities (losses) and the
temporal encoders' spectral features (models)."""
from __future__ import annotations

from typing import Optional

import torch


def power_spectrum(z: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
    """|rfft(z - mean(z), n)|^2 along the last axis: [..., T] -> [..., n // 2 + 1] (n = T by
    default; a larger n zero-pads, giving bins at fixed frequencies k / n cycles per frame)."""
    centred = z - z.mean(-1, keepdim=True)
    return torch.fft.rfft(centred, n=n).abs().pow(2)
