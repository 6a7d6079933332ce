"""Periodic feature similarities of SimPer (Yang et al., "SimPer: Simple Self-Supervised Learning
of Periodic Targets", ICLR 2023, section 3.2).

Both compare 1-D feature series (one value per frame) and are invariant to where in its cycle
a series starts, so two views of the same motion at the same speed are similar whatever their
crop offset. Inputs are batched: ``x`` [..., M, T1] and ``y`` [..., N, T2] give all M x N
pairs ``S`` [..., M, N] at once, by batched FFTs.
"""
from __future__ import annotations

import torch

from selfsup.core.spectrum import power_spectrum


def _check_series(x: torch.Tensor, y: torch.Tensor, same_length: bool) -> None:
    if x.dim() < 2 or y.dim() != x.dim() or x.shape[:-2] != y.shape[:-2]:
        raise ValueError(
            "series must be [..., M, T] and [..., N, T] tensors with the same leading batch shape, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if same_length and x.shape[-1] != y.shape[-1]:
        raise ValueError(f"series must have the same length T, got {x.shape[-1]} and {y.shape[-1]}")
    if min(x.shape[-1], y.shape[-1]) < 2:
        raise ValueError(f"series need at least 2 frames, got lengths {x.shape[-1]} and {y.shape[-1]}")


def max_cross_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MXCorr: the maximum over lags of the normalised cross-correlation, for all pairs.

    With rows centred (x_c = x - mean(x)), sigma the population standard deviation and
    P = 2 max(T1, T2) (zero padding, so no lag wraps around),

        cc_ij[k] = sum_t x_c,i[t + k] y_c,j[t] / (sigma_x,i sigma_y,j (min(T1, T2) - 1))
        S_ij     = max_k cc_ij[k]

    computed as irfft(rfft(x_c, P) * conj(rfft(y_c, P))), one batched FFT per input. A pair
    with a constant series (sigma = 0) uses 1 as its normaliser (its correlation is 0).

    Properties (as SimPer's released code): S_ii of a series with itself is T / (T - 1) (the
    divisor is T - 1 while the sum has T terms); S is symmetric, invariant to a circular phase
    shift up to the edge terms, and to positive scaling; and S >= 0, because the padding leaves
    lags with no overlap whose correlation is exactly 0.

    x: [..., M, T1], y: [..., N, T2] -> S: [..., M, N]; differentiable (through the maximising
    lag).

    >>> t = torch.arange(50.0)
    >>> s = max_cross_correlation(torch.sin(t / 3)[None], torch.sin(t / 3 + 1)[None])
    >>> s.shape, bool(s > 0.9)
    (torch.Size([1, 1]), True)
    """
    _check_series(x, y, same_length=False)
    t1, t2 = x.shape[-1], y.shape[-1]
    xc = x - x.mean(-1, keepdim=True)
    yc = y - y.mean(-1, keepdim=True)
    padded = 2 * max(t1, t2)
    spectrum = torch.fft.rfft(xc, n=padded).unsqueeze(-2) * torch.fft.rfft(yc, n=padded).conj().unsqueeze(-3)
    cc = torch.fft.irfft(spectrum, n=padded)  # [..., M, N, P]: correlation at every lag
    power = xc.pow(2).mean(-1).unsqueeze(-1) * yc.pow(2).mean(-1).unsqueeze(-2)  # sigma_x^2 sigma_y^2
    norm = torch.where(power > 0, power, torch.ones_like(power)).sqrt()
    return cc.amax(-1) / (norm * (min(t1, t2) - 1))


def band_mask(length: int, fps: float, low_hz: float, high_hz: float, device=None) -> torch.Tensor:
    """Bool [length // 2 + 1]: the rfft bins of a ``length``-frame series at ``fps`` whose
    frequency f (k * fps / length) lies in [low_hz, high_hz].

    f is computed as (k * fps) / length in float64 on the CPU: correctly rounded whenever
    k * fps is exact (any integer fps), so the Nyquist bin of an even length is exactly fps / 2
    and is kept by high_hz = fps / 2. (float32 ``rfftfreq`` gives 15.000000954 Hz for the top bin
    at T = 50, 30 fps; even float64 ``rfftfreq``, which divides by length * (1 / fps), overshoots
    at T = 22, 44, 58, ...)"""
    if fps <= 0 or not 0 <= low_hz <= high_hz:
        raise ValueError(f"need fps > 0 and 0 <= low_hz <= high_hz, got fps={fps}, band=({low_hz}, {high_hz})")
    freqs = torch.arange(length // 2 + 1, dtype=torch.float64) * fps / length
    mask = ((freqs >= low_hz) & (freqs <= high_hz)).to(device)
    if not mask.any():
        raise ValueError(
            f"no frequency bin of a {length}-frame series at {fps} fps lies in [{low_hz}, {high_hz}] Hz "
            f"(bins are {fps / length:.3g} Hz apart, up to {fps / 2:g} Hz): widen the band"
        )
    return mask


def normalized_psd(z: torch.Tensor, fps: float = 30.0, low_hz: float = 0.25, high_hz: float = 15.0) -> torch.Tensor:
    """The nPSD feature of SimPer: the power spectrum of the centred series restricted to the
    bins with low_hz <= f <= high_hz, L2-normalised. z: [..., T] -> [..., bins in band]."""
    psd = power_spectrum(z)[..., band_mask(z.shape[-1], fps, low_hz, high_hz, z.device)]
    return psd / psd.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(psd.dtype).tiny)


def npsd_similarity(
    x: torch.Tensor, y: torch.Tensor, fps: float = 30.0, low_hz: float = 0.25, high_hz: float = 15.0
) -> torch.Tensor:
    """nPSD similarity: the cosine of the band-limited power spectra of two series,

        S_ij = nPSD(x_i) . nPSD(y_j),  nPSD(z) = PSD(z)[band] / ||PSD(z)[band]||_2

    with PSD(z) = |rfft(z - mean z)|^2 and the band the bins whose frequency f = k * fps / T
    lies in [low_hz, high_hz] (the released code's 0.25-15 Hz at 30 fps). Invariant to phase
    (a circular shift changes only the rfft's phase) and to scaling; S in [0, 1].

    Deviations from the released code: bin frequencies are k * fps / T in float64 (see
    :func:`band_mask`; the code's linspace(0, fps / 2, bins) equals them for even T), and its broken
    ``zero_pad`` option is not ported.

    x: [..., M, T], y: [..., N, T] (same T) -> S: [..., M, N].
    """
    _check_series(x, y, same_length=True)
    return normalized_psd(x, fps, low_hz, high_hz) @ normalized_psd(y, fps, low_hz, high_hz).transpose(-1, -2)


SIMILARITIES = ("mxcorr", "npsd")


def periodic_similarity(
    x: torch.Tensor, y: torch.Tensor, kind: str = "mxcorr", fps: float = 30.0,
    low_hz: float = 0.25, high_hz: float = 15.0,
) -> torch.Tensor:
    """``kind`` 'mxcorr' (:func:`max_cross_correlation`) or 'npsd' (:func:`npsd_similarity`)."""
    if kind == "mxcorr":
        return max_cross_correlation(x, y)
    if kind == "npsd":
        return npsd_similarity(x, y, fps, low_hz, high_hz)
    raise ValueError(f"unknown periodic similarity {kind!r}; valid: {', '.join(SIMILARITIES)}")
