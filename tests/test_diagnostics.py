"""Collapse diagnostics on known cases: collapsed, isotropic, rank-k."""
import math

import pytest
import torch

from selfsup.eval.diagnostics import effective_rank, embedding_std


def gaussian(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_collapsed_embeddings_have_zero_std_and_rank_one():
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(0)).repeat(64, 1) * 3
    assert embedding_std(z).item() == pytest.approx(0.0, abs=1e-6)
    assert effective_rank(z).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("d", [4, 32, 128])
def test_isotropic_embeddings_have_std_one_over_sqrt_d(d):
    z = gaussian(20_000, d, seed=d)
    assert embedding_std(z).item() == pytest.approx(1 / math.sqrt(d), rel=0.03)
    assert embedding_std(z * 10 + 0.0).item() == pytest.approx(embedding_std(z).item(), rel=1e-9)  # scale-free


@pytest.mark.parametrize("d", [4, 32])
def test_isotropic_embeddings_have_full_effective_rank(d):
    assert effective_rank(gaussian(20_000, d)).item() == pytest.approx(d, rel=0.02)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_rank_k_embeddings_have_effective_rank_k(k):
    # k orthonormal directions in 32 dims, equal spread along each: effective rank k
    basis, _ = torch.linalg.qr(gaussian(32, k, seed=1))
    z = gaussian(20_000, k, seed=2) @ basis.T
    assert effective_rank(z).item() == pytest.approx(k, rel=0.02)
    assert effective_rank(z + 5.0).item() == pytest.approx(k, rel=0.02)  # a shared offset is no direction


def test_unequal_spread_lowers_the_effective_rank_exactly():
    # singular values proportional to (2, 1, 1): p = (1/2, 1/4, 1/4), erank = exp(H(p)) = 2^1.5
    z = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0]])
    assert effective_rank(z).item() == pytest.approx(2 ** 1.5, rel=1e-5)


@pytest.mark.parametrize("z", [torch.randn(1, 8), torch.randn(8)])
def test_reject_batches_they_cannot_measure(z):
    for fn in (embedding_std, effective_rank):
        with pytest.raises(ValueError, match="at least 2 embeddings"):
            fn(z)
