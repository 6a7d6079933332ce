"""BYOL / SimSiam prediction losses, Barlow Twins and VICReg: slow references written as loops
over the papers' formulas. The two-process tests are in test_two_process_ssl.py."""
import math

import pytest
import torch

from selfsup.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss, cross_correlation
from selfsup.losses.byol import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine, normalized_mse, simsiam_loss
from selfsup.losses.vicreg import VICRegLoss, vicreg_loss, vicreg_terms


def rows(z):
    return [[float(v) for v in r] for r in z.double()]


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def slow_normalized_mse(p, z):
    total = 0.0
    for a, b in zip(rows(p), rows(z)):
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
        total += sum((x / na - y / nb) ** 2 for x, y in zip(a, b))
    return total / len(p)


def column(z, j):
    return [r[j] for r in z]


def mean(values):
    return sum(values) / len(values)


def slow_barlow(z1, z2, lam, eps=1e-5):
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])

    def standardise(m):
        out = [[0.0] * d for _ in range(n)]
        for j in range(d):
            col = column(m, j)
            mu = mean(col)
            var = mean([(v - mu) ** 2 for v in col])
            for i in range(n):
                out[i][j] = (m[i][j] - mu) / math.sqrt(var + eps)
        return out

    a, b = standardise(a), standardise(b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k][i] * b[k][j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c * c
    return loss


def slow_vicreg(z1, z2, sim=25.0, std=25.0, cov=1.0, gamma=1.0, eps=1e-4):
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])
    invariance = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (n * d)

    def variance(m):
        total = 0.0
        for j in range(d):
            col = column(m, j)
            mu = mean(col)
            total += max(0.0, gamma - math.sqrt(sum((v - mu) ** 2 for v in col) / (n - 1) + eps))
        return total / d

    def covariance(m):
        mus = [mean(column(m, j)) for j in range(d)]
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    c = sum((m[k][i] - mus[i]) * (m[k][j] - mus[j]) for k in range(n)) / (n - 1)
                    total += c * c
        return total / d

    terms = (invariance, variance(a) + variance(b), covariance(a) + covariance(b))
    return sim * terms[0] + std * terms[1] + cov * terms[2], terms


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# -- BYOL / SimSiam ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(1, 3), (6, 8), (20, 4)])
def test_prediction_losses_match_slow_reference(n, d):
    g = torch.Generator().manual_seed(n * 10 + d)
    p1, p2, z1, z2 = (randn(g, n, d) for _ in range(4))
    assert normalized_mse(p1, z2).item() == pytest.approx(slow_normalized_mse(p1, z2), abs=1e-6)
    expected_cos = -mean([cos(a, b) for a, b in zip(rows(p1), rows(z2))])
    assert negative_cosine(p1, z2).item() == pytest.approx(expected_cos, abs=1e-6)
    byol = slow_normalized_mse(p1, z2) + slow_normalized_mse(p2, z1)
    assert byol_loss(p1, p2, z1, z2).item() == pytest.approx(byol, abs=1e-6)
    assert BYOLLoss()(p1, p2, z1, z2).item() == pytest.approx(byol, abs=1e-6)
    simsiam = -0.5 * (mean([cos(a, b) for a, b in zip(rows(p1), rows(z2))])
                      + mean([cos(a, b) for a, b in zip(rows(p2), rows(z1))]))
    assert simsiam_loss(p1, p2, z1, z2).item() == pytest.approx(simsiam, abs=1e-6)
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(simsiam, abs=1e-6)


def test_prediction_losses_stop_the_target_gradient_and_bound_the_value():
    p = torch.randn(5, 8, requires_grad=True)
    z = torch.randn(5, 8, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad.abs().sum() > 0 and z.grad is None
    assert normalized_mse(z, z * 3).item() == pytest.approx(0.0, abs=1e-6)
    assert normalized_mse(z, -z).item() == pytest.approx(4.0, abs=1e-5)
    assert simsiam_loss(z, z, 2 * z, 2 * z).item() == pytest.approx(-1.0, abs=1e-6)


def test_prediction_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="predictions and targets"):
        negative_cosine(torch.randn(4, 8), torch.randn(4, 7))


# -- Barlow Twins -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(2, 3), (7, 5), (16, 8)])
@pytest.mark.parametrize("lam", [5e-3, 0.5])
def test_barlow_twins_matches_slow_reference(n, d, lam):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = randn(g, n, d) * 3 + 1, randn(g, n, d)
    expected = slow_barlow(z1, z2, lam)
    assert barlow_twins_loss(z1, z2, lam).item() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert BarlowTwinsLoss(lam)(z1, z2).item() == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_barlow_twins_is_zero_for_identical_decorrelated_views():
    # two views equal to the same whitened batch: C = identity
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(cross_correlation(z, z, eps=0.0 + 1e-12), torch.eye(2, dtype=torch.float64))
    assert barlow_twins_loss(z, z, eps=1e-12).item() == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kwargs,match", [
    (dict(z1=torch.randn(1, 4), z2=torch.randn(1, 4)), "at least 2 samples"),
    (dict(lambda_offdiag=0.0), "lambda_offdiag must be positive"),
    (dict(z2=torch.randn(4, 5)), r"\[N, d\]"),
])
def test_barlow_twins_rejects_bad_arguments(kwargs, match):
    args = dict(z1=torch.randn(4, 4), z2=torch.randn(4, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        barlow_twins_loss(**args)


# -- VICReg -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(2, 3), (9, 4), (16, 8)])
@pytest.mark.parametrize("scale", [0.1, 3.0])
def test_vicreg_matches_slow_reference(n, d, scale):
    # scale 0.1 puts every std under gamma (hinge active), 3.0 above it (hinge inactive)
    g = torch.Generator().manual_seed(n * 7 + d)
    z1, z2 = randn(g, n, d) * scale, randn(g, n, d) * scale
    expected, terms = slow_vicreg(z1, z2)
    assert tuple(t.item() for t in vicreg_terms(z1, z2)) == pytest.approx(terms, rel=1e-9, abs=1e-6)
    assert vicreg_loss(z1, z2).item() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    custom, _ = slow_vicreg(z1, z2, sim=2.0, std=3.0, cov=0.5, gamma=0.7)
    loss = VICRegLoss(sim_coeff=2.0, std_coeff=3.0, cov_coeff=0.5, gamma=0.7)(z1, z2)
    assert loss.item() == pytest.approx(custom, rel=1e-9, abs=1e-6)


def test_vicreg_rejects_bad_arguments():
    with pytest.raises(ValueError, match="std_coeff must be non-negative"):
        VICRegLoss(std_coeff=-1.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        vicreg_loss(torch.randn(1, 4), torch.randn(1, 4))
