"""RotatingDigits (SimPer, Yang et al., ICLR 2023, section 4 and the released tutorial): clips
of a real MNIST digit oscillating in rotation at a known frequency.

Frame t of a clip is its digit rotated by ``90 deg * sin(2 pi f t / fps + phi)``, an
oscillation (not a spin) with f ~ U(freq_range) Hz and phi ~ U(-pi/2, pi/2). The tutorial's
scale is the default: 30 fps x 5 s = 150 frames of 28 x 28, f in 0.5-5 Hz, 100 clips per class
for training and 200 per class for testing (digits disjoint between the two). The target is
``targets["freq"]`` (Hz); the label is the digit's class.

Clips are rendered when loaded (one batched affine resampling for a whole batch of clips), so
a dataset of thousands of 150-frame clips costs only its digits in memory. Rotation uses
bilinear sampling (the tutorial's ``tfa.image.rotate`` used nearest); the same sampler resizes
to ``data.image_size``. Frequencies, phases and the digits are drawn with a fixed seed (0, as
the tutorial), so every run seed sees the same dataset.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.config.schema import DataConfig
from selfsup.data.base import IndexedDataset, RawSplits
from selfsup.data.images import load_mnist_5k
from selfsup.data.registry import dataset

AMPLITUDE = math.pi / 2  # 90 degrees
TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 200
DATA_SEED = 0


class RotatingDigits(IndexedDataset):
    """Digits (uint8 [N, 28, 28]) with a frequency and phase each; ``load`` renders float clips
    [n, frames, 1, size, size] in 0..1."""

    def __init__(self, digits: torch.Tensor, labels: torch.Tensor, freqs: torch.Tensor, phases: torch.Tensor,
                 fps: float, frames: int, size: int):
        self.digits, self.labels = digits, torch.as_tensor(labels, dtype=torch.long)
        self.freqs, self.phases = freqs.float(), phases.float()
        self.fps, self.frames, self.size = float(fps), int(frames), int(size)
        self.targets = {"freq": self.freqs, "phase": self.phases}

    def angles(self, indices: torch.Tensor) -> torch.Tensor:
        """Rotation of every frame, radians: [n, frames]."""
        t = torch.arange(self.frames, dtype=torch.float64) / self.fps
        f, phi = self.freqs[indices].double(), self.phases[indices].double()
        return (AMPLITUDE * torch.sin(2 * math.pi * f[:, None] * t + phi[:, None])).float()

    def load(self, indices: torch.Tensor) -> torch.Tensor:
        n = len(indices)
        angle = self.angles(indices).flatten()  # [n * frames]
        theta = torch.zeros(len(angle), 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
        digits = self.digits[indices].float().div(255.0).unsqueeze(1)  # [n, 1, 28, 28]
        source = digits.repeat_interleave(self.frames, dim=0)
        grid = F.affine_grid(theta, [len(angle), 1, self.size, self.size], align_corners=False)
        frames = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return frames.view(n, self.frames, 1, self.size, self.size)

    def _with(self, index: torch.Tensor, labels: torch.Tensor) -> "RotatingDigits":
        return RotatingDigits(self.digits[index], labels, self.freqs[index], self.phases[index],
                              self.fps, self.frames, self.size)

    def take(self, indices) -> "RotatingDigits":
        index = torch.as_tensor(indices, dtype=torch.long)
        return self._with(index, self.labels[index])

    def with_labels(self, labels: torch.Tensor) -> "RotatingDigits":
        return self._with(torch.arange(len(self)), labels)


def clip_geometry(cfg: DataConfig) -> tuple[float, int, int, tuple[float, float]]:
    """(fps, frames, size, freq range) from the config, validated."""
    fps = float(cfg.fps or 30.0)
    seconds = float(cfg.seconds or 5.0)
    frames = int(round(fps * seconds))
    size = int(cfg.image_size or 28)
    if fps <= 0 or frames < 2 or size < 4:
        raise ValueError(f"rotating-digits needs data.fps > 0, at least 2 frames and data.image_size >= 4; "
                         f"got fps={fps}, seconds={seconds} ({frames} frames), image_size={size}")
    if len(cfg.freq_range) != 2 or not 0 < cfg.freq_range[0] <= cfg.freq_range[1]:
        raise ValueError(f"data.freq_range must be [low, high] with 0 < low <= high, got {list(cfg.freq_range)}")
    low, high = float(cfg.freq_range[0]), float(cfg.freq_range[1])
    if high > fps / 2:
        raise ValueError(f"data.freq_range up to {high} Hz exceeds the Nyquist frequency {fps / 2} Hz of "
                         f"data.fps={fps}: lower the range or raise the frame rate")
    return fps, frames, size, (low, high)


@dataset("SimPer's RotatingDigits: clips of MNIST digits oscillating at 0.5-5 Hz "
         "(30 fps x 5 s, 28x28); target freq, label digit")
def rotating_digits(cfg: DataConfig, seed: int) -> RawSplits:
    fps, frames, size, (low, high) = clip_geometry(cfg)
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(DATA_SEED)
    train_idx, test_idx = [], []
    for cls in range(10):
        members = rng.permutation(np.flatnonzero(labels == cls))
        train_idx.append(members[:TRAIN_PER_CLASS])
        test_idx.append(members[TRAIN_PER_CLASS:TRAIN_PER_CLASS + TEST_PER_CLASS])

    def split(index: np.ndarray) -> RotatingDigits:
        index = np.sort(index)
        freqs = torch.from_numpy(rng.uniform(low, high, len(index)))
        phases = torch.from_numpy(rng.uniform(-math.pi / 2, math.pi / 2, len(index)))
        return RotatingDigits(torch.from_numpy(images[index]), torch.from_numpy(labels[index]), freqs, phases,
                              fps, frames, size)

    train, test = split(np.concatenate(train_idx)), split(np.concatenate(test_idx))
    return RawSplits(train=train, test=test, num_classes=10, kind="clip", class_names=[str(k) for k in range(10)],
                     info={"fps": fps, "target": "freq", "target_unit": "Hz", "freq_range": [low, high]})
