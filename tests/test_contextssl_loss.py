import math

import pytest
import torch
import torch.nn.functional as F

from dist_utils import ddp_grads, run_distributed
from selfsup.losses.contextssl import ContextSSLLoss, auxiliary_loss, context_prediction_loss

COLUMNS = {"rot": (0, 2), "color": (2, 4)}


def slow_context_loss(p: torch.Tensor, temperature: float, clamp: bool) -> float:
    """Row by row: partner of row i is i XOR 1; cosine (clamped at 1e-7 in the original's
    variant) over temperature; -log softmax over all rows but i; mean."""
    rows = [F.normalize(r, dim=0) for r in p.double()]
    total = 0.0
    for i, a in enumerate(rows):
        sims = []
        for b in rows:
            cos = float(a @ b)
            sims.append((max(cos, 1e-7) if clamp else cos) / temperature)
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[i ^ 1]) / denominator)
    return total / len(rows)


def slow_auxiliary_loss(e, t, factors) -> float:
    total = 0.0
    for name in factors:
        a, b = COLUMNS[name]
        values = [(float(e[i, c]) - float(t[i, c])) ** 2 for i in range(e.shape[0]) for c in range(a, b)]
        total += sum(values) / len(values)
    return total


@pytest.mark.parametrize("pairs,d", [(1, 3), (4, 8), (13, 5)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("clamp", [False, True])
def test_matches_slow_reference(pairs, d, temperature, clamp):
    g = torch.Generator().manual_seed(pairs * 10 + d)
    p = torch.randn(2 * pairs, d, generator=g, dtype=torch.float64)
    got = context_prediction_loss(p, temperature, clamp_cosine=clamp)
    assert got.item() == pytest.approx(slow_context_loss(p, temperature, clamp), abs=1e-6)


def test_partner_targets_are_2k_and_2k_plus_1():
    # rows 2k and 2k+1 identical, pairs orthogonal: near-zero loss; any other pairing is high
    basis = torch.eye(6, dtype=torch.float64) * 5
    p = basis.repeat_interleave(2, dim=0)  # rows 2k, 2k+1 = e_k
    assert context_prediction_loss(p, 0.02).item() < 1e-6
    shifted = torch.cat([p[1:], p[:1]])  # rows 2k+1, 2k+2 now match instead
    assert context_prediction_loss(shifted, 0.02).item() > 5


def _unit(degrees):
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(rad), torch.sin(rad)], dim=1)


def test_clamping_makes_negatives_past_orthogonal_count_as_orthogonal():
    # pair 0 near 0 degrees, pair 1 near 180: every cross-pair cosine is negative
    p = _unit([0.0, 6.0, 180.0, 186.0])
    turned = _unit([0.0, 6.0, 200.0, 206.0])  # pair 1 turned, its own cosine kept, still negative
    clamped = context_prediction_loss(p, 0.5, clamp_cosine=True).item()
    positive = math.cos(6 * math.pi / 180) / 0.5
    expected = -math.log(math.exp(positive) / (math.exp(positive) + 2 * math.exp(1e-7 / 0.5)))
    assert clamped == pytest.approx(expected, abs=1e-9)
    assert context_prediction_loss(turned, 0.5, clamp_cosine=True).item() == pytest.approx(clamped, abs=1e-9)
    assert context_prediction_loss(turned, 0.5).item() != pytest.approx(context_prediction_loss(p, 0.5).item(), abs=1e-3)


def test_rejects_odd_row_counts():
    with pytest.raises(ValueError, match="pairs"):
        context_prediction_loss(torch.randn(5, 4))


@pytest.mark.parametrize("factors", [[], ["rot"], ["color"], ["rot", "color"]])
def test_auxiliary_loss_matches_slow_reference(factors):
    g = torch.Generator().manual_seed(len(factors))
    e, t = torch.randn(2, 7, 4, generator=g, dtype=torch.float64)
    e.requires_grad_(True)
    got = auxiliary_loss(e, t, COLUMNS, factors)
    assert got.item() == pytest.approx(slow_auxiliary_loss(e.detach(), t, factors), abs=1e-9)
    if not factors:
        assert got.item() == 0 and not got.requires_grad
        return
    got.backward()
    withheld = [c for name, (a, b) in COLUMNS.items() if name not in factors for c in range(a, b)]
    assert (e.grad[:, withheld] == 0).all() and (e.grad.abs().sum(0) > 0).sum() == 4 - len(withheld)


def test_total_is_contrastive_plus_weighted_auxiliary():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(8, 5, generator=g, dtype=torch.float64)
    e, t = torch.randn(2, 8, 4, generator=g, dtype=torch.float64)
    out = ContextSSLLoss(temperature=0.2, aux_weight=5.0)(p, e, t, COLUMNS, ["rot"])
    assert out["contrastive"].item() == pytest.approx(slow_context_loss(p, 0.2, False), abs=1e-9)
    assert out["auxiliary"].item() == pytest.approx(slow_auxiliary_loss(e, t, ["rot"]), abs=1e-9)
    assert out["loss"].item() == pytest.approx(out["contrastive"].item() + 5 * out["auxiliary"].item(), abs=1e-9)
    with pytest.raises(ValueError, match="aux_weight"):
        ContextSSLLoss(aux_weight=-1)
    with pytest.raises(ValueError, match="temperature"):
        ContextSSLLoss(temperature=0)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()


def _two_process_step(rank, world, x):
    out = {}
    for clamp in (False, True):
        model = torch.nn.parallel.DistributedDataParallel(_model(0))
        n = x.shape[0] // world  # whole pairs per process
        loss = context_prediction_loss(model(x[rank * n:(rank + 1) * n]), 0.3, clamp, gather_distributed=True)
        loss.backward()
        out[f"clamp={clamp}"] = {"loss": loss.detach(), "grads": ddp_grads(model.module)}
    return out


def test_two_processes_equal_one_process_with_the_whole_batch():
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    results = run_distributed(_two_process_step, x)
    for clamp in (False, True):
        model = _model(0)
        loss = context_prediction_loss(model(x), 0.3, clamp)
        loss.backward()
        runs = [r[f"clamp={clamp}"] for r in results]
        assert (sum(r["loss"] for r in runs) / 2).item() == pytest.approx(loss.item(), abs=1e-6)
        for name, p in model.named_parameters():
            for r in runs:
                torch.testing.assert_close(r["grads"][name], p.grad, atol=1e-6, rtol=0)
