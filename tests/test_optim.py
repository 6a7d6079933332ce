import math

import pytest
import torch

from selfsup.config import OptimConfig
from selfsup.engine.optim import LARS, build_optimizer, warmup_cosine


def test_lars_trust_ratio_matches_the_formula():
    p = torch.tensor([3.0, 4.0])  # ||p|| = 5
    g = torch.tensor([0.0, 2.0])  # ||g|| = 2
    assert float(LARS.trust_ratio(p, g, 0.001)) == pytest.approx(0.001 * 5 / 2)
    assert float(LARS.trust_ratio(torch.zeros(2), g, 0.001)) == 1.0
    assert float(LARS.trust_ratio(p, torch.zeros(2), 0.001)) == 1.0


def reference_lars_steps(p0, grads, lr, momentum, wd, eta, exclude):
    """Plain-Python LARS on a list of floats, step by step."""
    p, v = list(p0), [0.0] * len(p0)
    for g in grads:
        if not exclude:
            update = [gi + wd * pi for gi, pi in zip(g, p)]
            pn, un = math.sqrt(sum(x * x for x in p)), math.sqrt(sum(x * x for x in update))
            trust = eta * pn / un if pn > 0 and un > 0 else 1.0
            update = [trust * u for u in update]
        else:
            update = list(g)
        v = [momentum * vi + ui for vi, ui in zip(v, update)]
        p = [pi - lr * vi for pi, vi in zip(p, v)]
    return p


@pytest.mark.parametrize("exclude", [False, True])
def test_lars_steps_match_reference(exclude):
    p0, grads = [0.5, -1.0, 2.0], [[0.1, 0.2, -0.3], [0.4, -0.1, 0.0], [-0.2, 0.3, 0.1]]
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = LARS([{"params": [param], "lars_exclude": exclude}], lr=0.5, momentum=0.9, weight_decay=0.01,
               trust_coefficient=0.02)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    expected = reference_lars_steps(p0, grads, 0.5, 0.9, 0.01, 0.02, exclude)
    assert param.detach().tolist() == pytest.approx(expected, abs=1e-12)


def test_biases_and_norms_are_not_decayed_and_probe_has_its_lr():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    probe = torch.nn.Linear(4, 2)
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.3, weight_decay=1e-4), model, probe)
    decayed, plain, probe_group = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 3])] and decayed["weight_decay"] == 1e-4
    assert plain["weight_decay"] == 0 and len(plain["params"]) == 3
    assert probe_group["lr"] == 0.1 and decayed["lr"] == 0.3
    assert isinstance(build_optimizer(OptimConfig(name="lars"), model, None), LARS)
    assert isinstance(build_optimizer(OptimConfig(name="adamw", lr=1e-3), model, probe), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optim.name"):
        build_optimizer(OptimConfig(name="adam"), model, None)


def test_warmup_then_cosine():
    assert warmup_cosine(0, 100, 10, 0.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)
