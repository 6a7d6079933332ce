"""DINO and SwAV: slow float64 references (python loops over the papers' formulas), properties,
argument errors, and two gloo processes against one process with the whole batch (one spawn)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dist_utils import ddp_grads, run_distributed
from selfsup.losses import (DINOLoss, SwAVLoss, dino_loss, sinkhorn_knopp, swav_loss, teacher_temperature,
                            update_center)


def randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def log_softmax_row(values: list[float]) -> list[float]:
    top = max(values)
    log_total = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - log_total for v in values]


def softmax_row(values: list[float]) -> list[float]:
    return [math.exp(v) for v in log_softmax_row(values)]


def slow_cross_crops(targets: list[list[list[float]]], log_probs: list[list[list[float]]]) -> float:
    """Mean over pairs (t, s != t) of the batch mean of -sum_k target * log_prob."""
    pair_losses = []
    for t, target in enumerate(targets):
        for s, log_prob in enumerate(log_probs):
            if s == t:
                continue
            rows = [-sum(p * lp for p, lp in zip(target[n], log_prob[n])) for n in range(len(target))]
            pair_losses.append(sum(rows) / len(rows))
    return sum(pair_losses) / len(pair_losses)


def slow_dino(student, teacher, center, student_temp, teacher_temp) -> float:
    c = center.tolist()
    targets = [[softmax_row([(v - ck) / teacher_temp for v, ck in zip(row, c)]) for row in g.tolist()] for g in teacher]
    log_probs = [[log_softmax_row([v / student_temp for v in row]) for row in g.tolist()] for g in student]
    return slow_cross_crops(targets, log_probs)


def slow_center(center, teacher, momentum) -> list[float]:
    rows = [row for g in teacher for row in g.tolist()]
    return [momentum * c + (1 - momentum) * sum(r[k] for r in rows) / len(rows) for k, c in enumerate(center.tolist())]


def slow_sinkhorn(rows: list[list[float]], epsilon: float, iterations: int) -> list[list[float]]:
    """SwAV's algorithm as the paper writes it, on Q [K, B]: Q = exp(scores^T / eps) / total, then
    prototype rows to 1/K and sample columns to 1/B in turn, finally times B."""
    b, k = len(rows), len(rows[0])
    q = [[math.exp(rows[j][i] / epsilon) for j in range(b)] for i in range(k)]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for i in range(k):
            row_sum = sum(q[i])
            q[i] = [v / row_sum / k for v in q[i]]
        for j in range(b):
            column_sum = sum(q[i][j] for i in range(k))
            for i in range(k):
                q[i][j] = q[i][j] / column_sum / b
    return [[q[i][j] * b for i in range(k)] for j in range(b)]


def slow_swav(scores, codes, temperature) -> float:
    log_probs = [[log_softmax_row([v / temperature for v in row]) for row in s.tolist()] for s in scores]
    return slow_cross_crops([c.tolist() for c in codes], log_probs)


# ---------------------------------------------------------------- DINO

@pytest.mark.parametrize("n,k,crops,globals_", [(1, 3, 2, 2), (4, 5, 4, 2), (6, 7, 3, 1), (3, 4, 5, 3)])
@pytest.mark.parametrize("student_temp,teacher_temp", [(0.1, 0.04), (0.1, 0.07), (0.5, 0.2)])
def test_dino_loss_matches_slow_reference(n, k, crops, globals_, student_temp, teacher_temp):
    g = torch.Generator().manual_seed(n * 100 + k * 10 + crops)
    student = [randn(g, n, k) for _ in range(crops)]
    teacher = [randn(g, n, k) for _ in range(globals_)]
    center = randn(g, k, scale=0.3)
    got = dino_loss(student, teacher, center, student_temp, teacher_temp)
    assert got.item() == pytest.approx(slow_dino(student, teacher, center, student_temp, teacher_temp), abs=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 1.0])
def test_update_center_matches_slow_reference(momentum):
    g = torch.Generator().manual_seed(3)
    teacher, center = [randn(g, 5, 6) for _ in range(2)], randn(g, 6)
    before = center.clone()
    got = update_center(center, teacher, momentum)
    torch.testing.assert_close(got, torch.tensor(slow_center(center, teacher, momentum), dtype=torch.float64),
                               atol=1e-12, rtol=0)
    assert torch.equal(center, before)  # pure: the argument is not modified


def test_dino_identical_sharp_teacher_and_student_give_low_loss():
    logits = 10 * torch.eye(6, dtype=torch.float64)  # 6 samples, each sure of its own dimension
    same = dino_loss([logits] * 4, [logits] * 2, torch.zeros(6, dtype=torch.float64))
    mismatched = dino_loss([logits.roll(1, dims=1)] * 4, [logits] * 2, torch.zeros(6, dtype=torch.float64))
    assert same < 0.01 < 1 < mismatched


def test_dino_teacher_gets_no_gradient_and_the_student_does():
    g = torch.Generator().manual_seed(0)
    student = [randn(g, 4, 5).requires_grad_() for _ in range(3)]
    teacher = [randn(g, 4, 5).requires_grad_() for _ in range(2)]
    dino_loss(student, teacher, torch.zeros(5, dtype=torch.float64)).backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0, 30) == pytest.approx(0.04)
    assert teacher_temperature(15, 30) == pytest.approx(0.055)
    assert teacher_temperature(7.5, 30) == pytest.approx(0.0475)
    assert teacher_temperature(30, 30) == pytest.approx(0.07)
    assert teacher_temperature(100, 30) == pytest.approx(0.07)
    assert teacher_temperature(0, 0) == pytest.approx(0.07)
    assert teacher_temperature(1, 2, start=0.1, end=0.3) == pytest.approx(0.2)


def test_dino_module_uses_the_centre_then_updates_it_in_training_only():
    g = torch.Generator().manual_seed(5)
    batches = [([randn(g, 4, 6) for _ in range(4)], [randn(g, 4, 6) for _ in range(2)]) for _ in range(3)]
    module = DINOLoss(6, warmup_epochs=10).double()
    center = torch.zeros(6, dtype=torch.float64)
    for step, (student, teacher) in enumerate(batches[:2]):
        got = module(student, teacher, epoch_progress=step * 5)
        expected = dino_loss(student, teacher, center, 0.1, teacher_temperature(step * 5, 10))
        assert got.item() == pytest.approx(expected.item(), abs=1e-12)
        center = update_center(center, teacher, 0.9)
        torch.testing.assert_close(module.center, center, atol=1e-12, rtol=0)
    assert "center" in module.state_dict()
    module.eval()
    module(*batches[2], epoch_progress=11)
    torch.testing.assert_close(module.center, center, atol=0, rtol=0)


@pytest.mark.parametrize("call,match", [
    (lambda: dino_loss(torch.randn(2, 3, 4), [torch.randn(3, 4)], torch.zeros(4)), "student_logits must be a non-empty list"),
    (lambda: dino_loss([torch.randn(3, 4)] * 2, [], torch.zeros(4)), "non-empty list"),
    (lambda: dino_loss([torch.randn(3, 4), torch.randn(3, 5)], [torch.randn(3, 4)], torch.zeros(4)), r"student_logits\[1\]"),
    (lambda: dino_loss([torch.randn(3, 4)] * 2, [torch.randn(3, 4)], torch.zeros(5)), r"center must be a \[4\]"),
    (lambda: dino_loss([torch.randn(3, 4)] * 2, [torch.randn(3, 4)], torch.zeros(4), student_temp=0), "temperature"),
    (lambda: dino_loss([torch.randn(3, 4)] * 2, [torch.randn(3, 4)], torch.zeros(4), teacher_temp=-1), "temperature"),
    (lambda: dino_loss([torch.randn(3, 4)], [torch.randn(3, 4)] * 2, torch.zeros(4)), "every teacher .global. crop first"),
    (lambda: dino_loss([torch.randn(3, 4)], [torch.randn(3, 4)], torch.zeros(4)), "at least two crops"),
    (lambda: update_center(torch.zeros(4), [torch.randn(3, 4)], momentum=1.5), "momentum"),
    (lambda: teacher_temperature(-1, 30), "non-negative"),
    (lambda: teacher_temperature(1, 30, start=0), "temperature"),
    (lambda: DINOLoss(0), "out_dim"),
    (lambda: DINOLoss(8, warmup_epochs=-1), "warmup_epochs"),
    (lambda: DINOLoss(8, center_momentum=-0.1), "momentum"),
])
def test_dino_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- Sinkhorn and SwAV

@pytest.mark.parametrize("n,k", [(1, 3), (4, 3), (8, 5), (5, 8)])
@pytest.mark.parametrize("epsilon,iterations", [(0.05, 3), (0.1, 1), (0.5, 6)])
def test_sinkhorn_matches_slow_reference(n, k, epsilon, iterations):
    g = torch.Generator().manual_seed(n * 10 + k)
    scores = F.normalize(randn(g, n, 4), dim=1) @ F.normalize(randn(g, k, 4), dim=1).T  # cosines, as in SwAV
    expected = torch.tensor(slow_sinkhorn(scores.tolist(), epsilon, iterations), dtype=torch.float64)
    torch.testing.assert_close(sinkhorn_knopp(scores, epsilon, iterations), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("m", [1, 6])
def test_sinkhorn_queue_rows_take_part_and_their_codes_are_dropped(m):
    g = torch.Generator().manual_seed(m)
    scores, queue = randn(g, 4, 5, scale=0.5), randn(g, m, 5, scale=0.5)
    expected = torch.tensor(slow_sinkhorn(torch.cat([scores, queue]).tolist(), 0.05, 3)[:4], dtype=torch.float64)
    got = sinkhorn_knopp(scores, queue_scores=queue)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(got, sinkhorn_knopp(scores), atol=1e-3)  # the queue changed the codes


def test_sinkhorn_rows_sum_to_one_and_columns_approach_the_equipartition():
    g = torch.Generator().manual_seed(2)
    scores = F.normalize(randn(g, 12, 6), dim=1) @ F.normalize(randn(g, 4, 6), dim=1).T
    codes = sinkhorn_knopp(scores, 0.05, 3)
    torch.testing.assert_close(codes.sum(1), torch.ones(12, dtype=torch.float64), atol=1e-12, rtol=0)
    assert (codes >= 0).all()
    equal_share = torch.full((4,), 12 / 4, dtype=torch.float64)  # N / K per prototype
    gaps = [(sinkhorn_knopp(scores, 0.05, it).sum(0) - equal_share).abs().sum() for it in (1, 3, 10, 30)]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] > 0
    converged = sinkhorn_knopp(scores, 0.05, 300)
    torch.testing.assert_close(converged.sum(0), equal_share, atol=1e-6, rtol=0)
    torch.testing.assert_close(converged.sum(1), torch.ones(12, dtype=torch.float64), atol=1e-12, rtol=0)


def test_sinkhorn_ignores_a_constant_added_to_a_prototype_and_huge_scores_stay_finite():
    g = torch.Generator().manual_seed(4)
    scores = randn(g, 6, 5, scale=0.5)
    shifted = scores + randn(g, 1, 5, scale=3.0)  # one constant per prototype column
    torch.testing.assert_close(sinkhorn_knopp(shifted), sinkhorn_knopp(scores), atol=1e-9, rtol=0)
    big = (scores * 40).float()  # exp(+-40 * 1.5 / 0.05): far beyond float32 either way
    codes = sinkhorn_knopp(big)
    assert torch.isfinite(codes).all()
    torch.testing.assert_close(codes.sum(1), torch.ones(6), atol=1e-5, rtol=0)


def test_sinkhorn_has_no_gradient_and_keeps_the_dtype():
    scores = torch.randn(4, 3, requires_grad=True)
    assert not sinkhorn_knopp(scores).requires_grad
    assert sinkhorn_knopp(torch.randn(4, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("n,k,crops,coded", [(1, 3, 2, 2), (4, 5, 4, 2), (5, 3, 3, 1)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_swav_loss_matches_slow_reference(n, k, crops, coded, temperature):
    g = torch.Generator().manual_seed(n + k + crops)
    scores = [randn(g, n, k) for _ in range(crops)]
    codes = [F.softmax(randn(g, n, k), dim=1) for _ in range(coded)]
    got = swav_loss(scores, codes, temperature)
    assert got.item() == pytest.approx(slow_swav(scores, codes, temperature), abs=1e-6)


def test_swav_module_is_sinkhorn_codes_then_swapped_prediction():
    g = torch.Generator().manual_seed(7)
    scores = [randn(g, 6, 5, scale=0.5).requires_grad_() for _ in range(4)]
    queues = [randn(g, 3, 5, scale=0.5) for _ in range(2)]
    codes = [torch.tensor(slow_sinkhorn(torch.cat([s.detach(), q]).tolist(), 0.05, 3)[:6], dtype=torch.float64)
             for s, q in zip(scores, queues)]
    got = SwAVLoss()(scores, queue_scores=queues)
    assert got.item() == pytest.approx(slow_swav(scores, codes, 0.1), abs=1e-6)
    got.backward()
    plain = [s.detach().clone().requires_grad_() for s in scores]
    swav_loss(plain, codes).backward()  # the codes are constants: no gradient through Sinkhorn
    for s, p in zip(scores, plain):
        torch.testing.assert_close(s.grad, p.grad, atol=1e-9, rtol=0)
    assert SwAVLoss(num_global_crops=1)(scores).item() != pytest.approx(SwAVLoss()(scores).item(), abs=1e-6)


@pytest.mark.parametrize("call,match", [
    (lambda: sinkhorn_knopp(torch.randn(4)), r"\[N, K\]"),
    (lambda: sinkhorn_knopp(torch.randn(0, 3)), "non-empty"),
    (lambda: sinkhorn_knopp(torch.randn(4, 3), epsilon=0), "epsilon"),
    (lambda: sinkhorn_knopp(torch.randn(4, 3), iterations=0), "iterations"),
    (lambda: sinkhorn_knopp(torch.randn(4, 3), iterations=1.5), "iterations"),
    (lambda: sinkhorn_knopp(torch.randn(4, 3), queue_scores=torch.randn(2, 4)), r"queue_scores must be an \[M, 3\]"),
    (lambda: swav_loss([torch.randn(3, 4)], [torch.rand(3, 4)] * 2), "every coded .global. crop first"),
    (lambda: swav_loss([torch.randn(3, 4)] * 2, [torch.rand(3, 5)]), r"codes\[0\]"),
    (lambda: swav_loss([torch.randn(3, 4)] * 2, [torch.rand(3, 4)], temperature=0), "temperature"),
    (lambda: swav_loss([torch.randn(3, 4)], [torch.rand(3, 4)]), "at least two crops"),
    (lambda: SwAVLoss(num_global_crops=0), "num_global_crops"),
    (lambda: SwAVLoss()([torch.randn(3, 4)] * 3, queue_scores=[torch.randn(2, 4)]), "one entry per global crop"),
    (lambda: SwAVLoss(num_global_crops=3)([torch.randn(3, 4)] * 2), "fewer than num_global_crops"),
])
def test_swav_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- two processes against one

N, K, D = 8, 5, 6  # the whole batch; each of the 2 processes holds 4 samples


def net(seed: int, out: int = K) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 5), nn.Tanh(), nn.Linear(5, out)).double()


def dino_steps(model, teacher, crops, part, gather_distributed):
    """Two steps of DINOLoss (2 global + 2 local crops): losses, gradients and centres."""
    module = DINOLoss(K, warmup_epochs=2, gather_distributed=gather_distributed).double()
    out = []
    for step in range(2):
        x = [c[part] for c in crops[step]]
        with torch.no_grad():
            targets = [teacher(v) for v in x[:2]]
        loss = module([model(v) for v in x], targets, epoch_progress=step)
        loss.backward()
        grads = ddp_grads(model.module if hasattr(model, "module") else model)
        model.zero_grad()
        out.append({"loss": loss.detach(), "grads": grads, "center": module.center.clone()})
    return out


def swav_step(model, crops, queues, part, gather_distributed):
    scores = [model(c[part]) for c in crops]
    loss = SwAVLoss(gather_distributed=gather_distributed)(scores, queue_scores=queues)
    loss.backward()
    return {"loss": loss.detach(), "grads": ddp_grads(model.module if hasattr(model, "module") else model)}


def _worker(rank, world, data):
    part = slice(rank * N // world, (rank + 1) * N // world)
    out = {"dino": dino_steps(nn.parallel.DistributedDataParallel(net(0)), net(1), data["dino_crops"], part, True)}
    # unequal batches: 3 rows here, 5 there; the centre is still the mean of all 8
    uneven = slice(0, 3) if rank == 0 else slice(3, N)
    out["center_uneven"] = update_center(data["center"], [t[uneven] for t in data["teacher"]], 0.6, True)
    out["codes"] = sinkhorn_knopp(data["scores"][part], gather_distributed=True)
    out["codes_queue"] = sinkhorn_knopp(data["scores"][part], queue_scores=data["queue"], gather_distributed=True)
    out["codes_local"] = sinkhorn_knopp(data["scores"][part])
    out["swav"] = swav_step(nn.parallel.DistributedDataParallel(net(2)), data["swav_crops"], data["swav_queues"],
                            part, True)
    return out


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(11)
    return {"dino_crops": [[randn(g, N, D) for _ in range(4)] for _ in range(2)],
            "teacher": [randn(g, N, K) for _ in range(2)], "center": randn(g, K),
            "scores": randn(g, N, K, scale=0.5), "queue": randn(g, 3, K, scale=0.5),
            "swav_crops": [randn(g, N, D) for _ in range(3)], "swav_queues": [randn(g, 4, K, scale=0.5) for _ in range(2)]}


@pytest.fixture(scope="module")
def results(data):
    return run_distributed(_worker, data)


def assert_step_matches(results_steps, expected, atol=1e-6):
    assert (sum(r["loss"] for r in results_steps) / len(results_steps)).item() == pytest.approx(expected["loss"].item(), abs=atol)
    for key, grad in expected["grads"].items():
        assert grad.abs().sum() > 0, key
        for r in results_steps:
            torch.testing.assert_close(r["grads"][key], grad, atol=atol, rtol=0, msg=key)


def test_dino_two_processes_equal_one_process(data, results):
    expected = dino_steps(net(0), net(1), data["dino_crops"], slice(None), False)
    assert not torch.allclose(expected[0]["center"], expected[1]["center"])  # the centre moved between steps
    for step in range(2):
        assert_step_matches([r["dino"][step] for r in results], expected[step])
        for r in results:  # the all-reduced mean is the whole batch's
            torch.testing.assert_close(r["dino"][step]["center"], expected[step]["center"], atol=1e-9, rtol=0)


def test_dino_centre_is_the_whole_batch_mean_with_unequal_batches(data, results):
    expected = torch.tensor(slow_center(data["center"], data["teacher"], 0.6), dtype=torch.float64)
    for r in results:
        torch.testing.assert_close(r["center_uneven"], expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("key,queue", [("codes", None), ("codes_queue", "queue")])
def test_sinkhorn_each_process_gets_its_rows_of_the_whole_batch_codes(data, results, key, queue):
    whole = sinkhorn_knopp(data["scores"], queue_scores=data[queue] if queue else None)
    for rank, r in enumerate(results):
        torch.testing.assert_close(r[key], whole[rank * N // 2:(rank + 1) * N // 2], atol=1e-9, rtol=0)


def test_sinkhorn_on_local_rows_only_would_be_caught(data, results):
    whole = sinkhorn_knopp(data["scores"])
    assert not torch.allclose(results[0]["codes_local"], whole[:N // 2], atol=1e-4)


def test_swav_two_processes_equal_one_process(data, results):
    expected = swav_step(net(2), data["swav_crops"], data["swav_queues"], slice(None), False)
    assert_step_matches([r["swav"] for r in results], expected)
