"""Benchmark: SimPer's all-pairs MXCorr for a batch (B clips x M views x M views x T frames) as
batched FFTs (selfsup.losses.periodic.max_cross_correlation) against the direct O(T^2)
computation (one batched matrix product per lag, 2T - 1 lags), side by side in one process.

    python bench/simper_mxcorr.py [--threads 2] [--repeats 5]

Prints, per size, the best-of-repeats time of each (forward, and forward + backward) and the ratio,
plus the largest difference between the two results.
"""
from __future__ import annotations

import argparse
import time

import torch

from selfsup.losses.periodic import max_cross_correlation


def direct_mxcorr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The definition, lag by lag: [B, M, T], [B, N, T] -> [B, M, N]."""
    t = x.shape[-1]
    xc, yc = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    power = xc.pow(2).mean(-1).unsqueeze(-1) * yc.pow(2).mean(-1).unsqueeze(-2)
    norm = torch.where(power > 0, power, torch.ones_like(power)).sqrt()
    best = torch.zeros(x.shape[0], x.shape[1], y.shape[1], dtype=x.dtype)  # lags without overlap
    for lag in range(-(t - 1), t):
        a, b = (xc[..., lag:], yc[..., : t - lag]) if lag >= 0 else (xc[..., : t + lag], yc[..., -lag:])
        best = torch.maximum(best, a @ b.transpose(-1, -2))
    return best / (norm * (t - 1))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: this machine is shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, best of {args.repeats}")
    print("| B | M | T | FFT fwd ms | direct fwd ms | ratio | FFT fwd+bwd ms | direct fwd+bwd ms | ratio | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for b, m, t in [(4, 10, 50), (32, 10, 50), (4, 10, 150), (16, 10, 300), (4, 5, 1000)]:
        x = torch.randn(b, m, t, generator=g)
        y = torch.randn(b, m, t, generator=g)
        diff = (max_cross_correlation(x.double(), y.double()) - direct_mxcorr(x.double(), y.double())).abs().max().item()
        fft_fwd = timed(lambda: max_cross_correlation(x, y), args.repeats)
        direct_fwd = timed(lambda: direct_mxcorr(x, y), args.repeats)

        def backward(fn):
            xr = x.clone().requires_grad_()
            fn(xr, y).sum().backward()

        fft_bwd = timed(lambda: backward(max_cross_correlation), args.repeats)
        direct_bwd = timed(lambda: backward(direct_mxcorr), args.repeats)
        print(f"| {b} | {m} | {t} | {fft_fwd * 1e3:.2f} | {direct_fwd * 1e3:.2f} | {direct_fwd / fft_fwd:.1f}x "
              f"| {fft_bwd * 1e3:.2f} | {direct_bwd * 1e3:.2f} | {direct_bwd / fft_bwd:.1f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
