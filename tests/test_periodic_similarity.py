import math
from fractions import Fraction

import pytest
import torch

from selfsup.losses.periodic import (
    band_mask,
    max_cross_correlation,
    normalized_psd,
    npsd_similarity,
    periodic_similarity,
)
from periodic_reference import slow_mxcorr, slow_npsd, slow_npsd_similarity


def _sine(t: int, cycles_per_frame: float, phase: float = 0.0) -> torch.Tensor:
    return torch.sin(2 * math.pi * cycles_per_frame * torch.arange(t, dtype=torch.float64) + phase)


@pytest.mark.parametrize("batch,m,n,t1,t2", [((), 1, 1, 2, 2), ((), 3, 4, 17, 17), ((2,), 3, 3, 10, 10),
                                              ((2, 3), 2, 5, 8, 13), ((1,), 4, 2, 21, 6)])
def test_mxcorr_matches_direct_computation(batch, m, n, t1, t2):
    g = torch.Generator().manual_seed(m * 100 + n * 10 + t1 + t2)
    x = torch.randn(*batch, m, t1, generator=g, dtype=torch.float64)
    y = torch.randn(*batch, n, t2, generator=g, dtype=torch.float64)
    s = max_cross_correlation(x, y)
    assert s.shape == (*batch, m, n)
    flat_x, flat_y, flat_s = x.reshape(-1, m, t1), y.reshape(-1, n, t2), s.reshape(-1, m, n)
    for b in range(flat_s.shape[0]):
        for i in range(m):
            for j in range(n):
                assert flat_s[b, i, j].item() == pytest.approx(slow_mxcorr(flat_x[b, i], flat_y[b, j]), abs=1e-6)


@pytest.mark.parametrize("t", [5, 50, 64])
def test_mxcorr_self_similarity_is_t_over_t_minus_one(t):
    x = torch.randn(6, t, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    assert torch.diagonal(max_cross_correlation(x, x)) == pytest.approx([t / (t - 1)] * 6, abs=1e-9)


def test_mxcorr_is_symmetric_scale_invariant_and_non_negative():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 5, 30, generator=g, dtype=torch.float64), torch.randn(2, 4, 30, generator=g, dtype=torch.float64)
    s = max_cross_correlation(x, y)
    torch.testing.assert_close(max_cross_correlation(y, x), s.transpose(-1, -2), atol=1e-12, rtol=0)
    torch.testing.assert_close(max_cross_correlation(3.5 * x + 2.0, 0.1 * y - 7.0), s, atol=1e-9, rtol=0)
    assert (s >= 0).all()


def test_mxcorr_is_phase_invariant_and_frequency_selective():
    t = 50  # the spec's numbers: a phase-shifted copy 0.993, another frequency about 0.08
    base = _sine(t, 2 / 30)
    shifted = _sine(t, 2 / 30, phase=1.0)
    other = _sine(t, 4.7 / 30, phase=0.3)
    s = max_cross_correlation(base[None], torch.stack([base, shifted, other]))[0]
    assert s[0].item() == pytest.approx(t / (t - 1))
    assert s[1].item() > 0.97
    assert s[2].item() < 0.3
    assert s[1] > 3 * s[2]


def test_mxcorr_of_a_constant_series_is_zero_with_finite_gradients():
    x = torch.zeros(1, 2, 12, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 3, 12, dtype=torch.float64)
    s = max_cross_correlation(x + 1.0, y)
    assert torch.equal(s, torch.zeros(1, 2, 3, dtype=torch.float64))
    s.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("t,fps,band", [(16, 30.0, (0.25, 15.0)), (25, 30.0, (0.25, 15.0)),
                                        (40, 100.0, (0.5, 4.0)), (9, 10.0, (0.0, 5.0))])
def test_npsd_matches_direct_dft(t, fps, band):
    g = torch.Generator().manual_seed(t)
    x, y = torch.randn(2, 3, t, generator=g, dtype=torch.float64), torch.randn(2, 2, t, generator=g, dtype=torch.float64)
    feats = normalized_psd(x, fps, *band)
    assert feats[0, 1].tolist() == pytest.approx(slow_npsd(x[0, 1], fps, *band), abs=1e-9)
    s = npsd_similarity(x, y, fps, *band)
    assert s.shape == (2, 3, 2)
    for b in range(2):
        for i in range(3):
            for j in range(2):
                assert s[b, i, j].item() == pytest.approx(slow_npsd_similarity(x[b, i], y[b, j], fps, *band), abs=1e-6)


def test_npsd_rows_have_unit_norm_and_self_similarity_one():
    x = torch.randn(4, 7, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(normalized_psd(x).norm(dim=-1), torch.ones(4, 7, dtype=torch.float64))
    torch.testing.assert_close(torch.diagonal(npsd_similarity(x, x), dim1=-2, dim2=-1), torch.ones(4, 7, dtype=torch.float64))


def test_npsd_is_invariant_to_circular_shift_and_scale_and_symmetric():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(3, 24, generator=g, dtype=torch.float64), torch.randn(5, 24, generator=g, dtype=torch.float64)
    s = npsd_similarity(x, y)
    torch.testing.assert_close(npsd_similarity(torch.roll(x, 7, dims=-1) * 4.0, y), s)
    torch.testing.assert_close(npsd_similarity(y, x), s.T)
    assert ((s >= 0) & (s <= 1 + 1e-12)).all()


def test_npsd_band_ignores_out_of_band_power():
    t, fps = 60, 30.0  # bins 0.5 Hz apart
    low = _sine(t, 2.0 / fps)
    with_high = low + 3 * _sine(t, 12.0 / fps)
    assert npsd_similarity(low[None], with_high[None], fps, 0.25, 5.0).item() == pytest.approx(1.0)
    assert npsd_similarity(low[None], with_high[None], fps, 0.25, 15.0).item() < 0.2


def test_npsd_keeps_the_nyquist_bin_at_t50_30fps():
    # float32 bin frequencies put the top bin at 15.000000954 Hz, outside the 15 Hz band edge,
    # so two series dominated by 15 Hz looked unrelated (similarity 0.0)
    t, fps = 50, 30.0
    nyquist = torch.cos(math.pi * torch.arange(t, dtype=torch.float64))  # +1, -1, ...: 15 Hz
    x = torch.stack([nyquist, nyquist + 0.05 * _sine(t, 3.0 / fps)])
    y = torch.stack([-3 * nyquist, 2 * nyquist + 0.05 * _sine(t, 7.0 / fps, 0.4)])
    s = npsd_similarity(x, y, fps, 0.25, 15.0)
    assert s[0, 0].item() == pytest.approx(1.0, abs=1e-9)
    assert s.min().item() > 0.99


@pytest.mark.parametrize("fps", [30.0, 25.0, 24.0, 12.5])
def test_band_mask_keeps_the_top_bin_and_matches_exact_frequencies(fps):
    for t in range(20, 121, 2):
        assert band_mask(t, fps, 0.25, fps / 2)[-1].item(), f"Nyquist bin dropped at T={t}, {fps} fps"
    for t in range(2, 121):  # each bin's frequency is the float nearest k * fps / T; band edges on bins
        freqs = [float(Fraction(k) * Fraction(fps) / t) for k in range(t // 2 + 1)]
        for low, high in ((0.25, fps / 2), (freqs[1], freqs[-1]), (freqs[t // 4], freqs[t // 4])):
            expected = [low <= f <= high for f in freqs]
            assert band_mask(t, fps, low, high).tolist() == expected, (t, low, high)


def test_band_mask_and_errors_name_the_fix():
    assert band_mask(10, 10.0, 1.0, 3.0).tolist() == [False, True, True, True, False, False]
    with pytest.raises(ValueError, match="widen the band"):
        band_mask(10, 10.0, 1.2, 1.8)
    with pytest.raises(ValueError, match="same length"):
        npsd_similarity(torch.randn(2, 10), torch.randn(2, 11))
    with pytest.raises(ValueError, match=r"\[\.\.\., M, T\]"):
        max_cross_correlation(torch.randn(10), torch.randn(10))
    with pytest.raises(ValueError, match="unknown periodic similarity"):
        periodic_similarity(torch.randn(2, 10), torch.randn(2, 10), kind="cosine")
