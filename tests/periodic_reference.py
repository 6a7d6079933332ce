"""Slow, obviously-correct references for SimPer's similarities and loss: plain Python loops
over the formulas in float64 (no FFT, no broadcasting)."""
from __future__ import annotations

import cmath
import math


def _centred(values) -> list[float]:
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    return [v - mean for v in values]


def slow_mxcorr(a, b) -> float:
    """max over every lag of sum_t a_c[t + lag] b_c[t] / (sigma_a sigma_b (min(T) - 1)); lags
    without overlap count with correlation 0 (as the zero-padded FFT of the original)."""
    a, b = _centred(a), _centred(b)
    sigma = math.sqrt(sum(v * v for v in a) / len(a)) * math.sqrt(sum(v * v for v in b) / len(b))
    norm = sigma if sigma != 0 else 1.0
    best = 0.0
    for lag in range(-(len(b) - 1), len(a)):
        total = sum(a[t + lag] * b[t] for t in range(len(b)) if 0 <= t + lag < len(a))
        best = max(best, total)
    return best / (norm * (min(len(a), len(b)) - 1))


def slow_npsd(a, fps: float, low_hz: float, high_hz: float) -> list[float]:
    """Direct DFT of the centred series; powers of the bins k = 0..T//2 whose frequency
    k * fps / T lies in the band, divided by their Euclidean norm."""
    a = _centred(a)
    n = len(a)
    powers = []
    for k in range(n // 2 + 1):
        if low_hz <= k * fps / n <= high_hz:
            coefficient = sum(v * cmath.exp(-2j * math.pi * k * t / n) for t, v in enumerate(a))
            powers.append(abs(coefficient) ** 2)
    norm = math.sqrt(sum(p * p for p in powers))
    return [p / norm for p in powers]


def slow_npsd_similarity(a, b, fps: float, low_hz: float, high_hz: float) -> float:
    pa, pb = slow_npsd(a, fps, low_hz, high_hz), slow_npsd(b, fps, low_hz, high_hz)
    return sum(u * v for u, v in zip(pa, pb))


def slow_label_weights(row_labels, col_labels, power: float, temperature: float) -> list[list[float]]:
    out = []
    for li in row_labels:
        logits = [-abs(float(li) - float(lj)) ** power / temperature for lj in col_labels]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        out.append([e / sum(exps) for e in exps])
    return out


def slow_soft_cross_entropy(similarity, weights, temperature: float) -> float:
    """Mean over rows of sum_j -W_ij log softmax_j(S_ij / temperature)."""
    total = 0.0
    for s_row, w_row in zip(similarity, weights):
        logits = [float(v) / temperature for v in s_row]
        log_norm = math.log(sum(math.exp(v) for v in logits))
        total += sum(-float(w) * (v - log_norm) for w, v in zip(w_row, logits))
    return total / len(similarity)


def slow_simper_loss(series, speeds, similarity: str, power: float, label_temperature: float,
                     feature_temperature: float, fps: float = 30.0, band=(0.25, 15.0)) -> float:
    """Per clip: S between the first M and the last M views, W from their speeds; mean of the
    per-clip soft cross-entropies."""
    losses = []
    for clip, clip_speeds in zip(series.tolist(), speeds.tolist()):
        m = len(clip) // 2
        if similarity == "mxcorr":
            sim = [[slow_mxcorr(clip[i], clip[m + j]) for j in range(m)] for i in range(m)]
        else:
            sim = [[slow_npsd_similarity(clip[i], clip[m + j], fps, *band) for j in range(m)] for i in range(m)]
        weights = slow_label_weights(clip_speeds[:m], clip_speeds[m:], power, label_temperature)
        losses.append(slow_soft_cross_entropy(sim, weights, feature_temperature))
    return sum(losses) / len(losses)
