import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.losses import NTXentLoss, nt_xent
from dist_utils import assert_matches_one_process, ddp_grads, run_distributed


def slow_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """The formula row by row: -log(exp(s_ij) / sum_{k != i} exp(s_ik)), mean over 2N rows."""
    rows = [F.normalize(r, dim=0) for r in torch.cat([z1, z2]).double()]
    n = z1.shape[0]
    total = 0.0
    for i, a in enumerate(rows):
        j = (i + n) % (2 * n)
        sims = [float(a @ b) / temperature for b in rows]
        denominator = sum(math.exp(s) for k, s in enumerate(sims) if k != i)
        total += -math.log(math.exp(sims[j]) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("n,d", [(2, 3), (5, 16), (16, 8)])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
def test_matches_slow_reference(n, d, temperature):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    assert nt_xent(z1, z2, temperature).item() == pytest.approx(slow_nt_xent(z1, z2, temperature), abs=1e-6)
    assert NTXentLoss(temperature)(z1, z2).item() == pytest.approx(slow_nt_xent(z1, z2, temperature), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_dtype_is_preserved(dtype):
    z = torch.randn(4, 8, dtype=dtype)
    assert nt_xent(z, z + 0.1).dtype == dtype


def test_identical_views_of_distinct_samples_give_low_loss():
    z = torch.eye(8) * 10
    near_perfect = nt_xent(z, z, temperature=0.1)
    shuffled = nt_xent(z, z.roll(1, dims=0), temperature=0.1)
    assert near_perfect < 0.01 < shuffled


@pytest.mark.parametrize("bad", [(torch.randn(4, 8), torch.randn(5, 8)), (torch.randn(4), torch.randn(4))])
def test_rejects_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        nt_xent(*bad)


def test_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


def _encoder(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()


def _two_process_step(rank, world, x1, x2):
    model = torch.nn.parallel.DistributedDataParallel(_encoder(0))
    n = x1.shape[0] // world
    part = slice(rank * n, (rank + 1) * n)
    loss = nt_xent(model(x1[part]), model(x2[part]), temperature=0.3, gather_distributed=True)
    loss.backward()
    return {"loss": loss.detach(), "grads": ddp_grads(model.module)}


def test_two_processes_equal_one_process_with_the_whole_batch():
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(8, 6, generator=g, dtype=torch.float64), torch.randn(8, 6, generator=g, dtype=torch.float64)
    model = _encoder(0)
    loss = nt_xent(model(x1), model(x2), temperature=0.3)
    loss.backward()
    results = run_distributed(_two_process_step, x1, x2)
    assert_matches_one_process(results, loss, model, atol=1e-6)
