"""NNCLR, MoCo v3 and MAE: slow float64 references (python loops over the papers' formulas),
properties, argument errors, and two gloo processes against one process with the whole batch
(one spawn), NNCLR's support set held in an EmbeddingQueue."""
import math

import pytest
import torch
from torch import nn

from dist_utils import ddp_grads, run_distributed
from selfsup.losses import (MAELoss, MoCoV3Loss, NNCLRLoss, mae_loss, mocov3_loss, nearest_neighbour, nnclr_loss,
                            patchify, random_masking, unpatchify)
from selfsup.models.momentum import EmbeddingQueue


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def slow_nearest(z, support) -> list[list[float]]:
    rows = support.tolist()
    out = []
    for row in z.tolist():
        cosines = [dot(unit(row), unit(s)) for s in rows]
        out.append(rows[max(range(len(rows)), key=lambda j: (cosines[j], -j))])
    return out


def slow_two_way(anchors: list[list[float]], targets: list[list[float]], t: float) -> float:
    a, b = [unit(r) for r in anchors], [unit(r) for r in targets]
    n = len(a)
    total = 0.0
    for i in range(n):
        positive = math.exp(dot(a[i], b[i]) / t)
        total += -math.log(positive / sum(math.exp(dot(a[i], b[k]) / t) for k in range(n)))
        total += -math.log(positive / sum(math.exp(dot(a[k], b[i]) / t) for k in range(n)))
    return total / (2 * n)


def slow_nnclr(z1, z2, p1, p2, support, t) -> float:
    n1, n2 = slow_nearest(z1, support), slow_nearest(z2, support)
    return 0.5 * (slow_two_way(n1, p2.tolist(), t) + slow_two_way(n2, p1.tolist(), t))


def slow_ctr(q, k, t) -> float:
    u, v = [unit(r) for r in q.tolist()], [unit(r) for r in k.tolist()]
    rows = [-math.log(math.exp(dot(u[i], v[i]) / t) / sum(math.exp(dot(u[i], vj) / t) for vj in v)) for i in range(len(u))]
    return 2 * t * sum(rows) / len(rows)


def slow_mae(pred, target, mask, norm_pix, eps=1e-6) -> float:
    total, count = 0.0, 0.0
    for n in range(pred.shape[0]):
        for l in range(pred.shape[1]):
            x = target[n, l].tolist()
            if norm_pix:
                mean = sum(x) / len(x)
                var = sum((v - mean) ** 2 for v in x) / (len(x) - 1)
                x = [(v - mean) / math.sqrt(var + eps) for v in x]
            error = sum((p - v) ** 2 for p, v in zip(pred[n, l].tolist(), x)) / len(x)
            total += float(mask[n, l]) * error
            count += float(mask[n, l])
    return total / count


# ---------------------------------------------------------------- NNCLR

@pytest.mark.parametrize("n,m,d", [(1, 1, 3), (4, 7, 5), (6, 3, 8)])
def test_nearest_neighbour_matches_slow_reference(n, m, d):
    g = torch.Generator().manual_seed(n * 10 + m)
    z, support = randn(g, n, d), randn(g, m, d)
    torch.testing.assert_close(nearest_neighbour(z, support), torch.tensor(slow_nearest(z, support), dtype=torch.float64))


def test_nearest_neighbour_uses_cosine_and_sends_no_gradient():
    support = torch.tensor([[10.0, 0.0], [0.5, 0.5], [0.0, 0.1]], requires_grad=True)
    z = torch.tensor([[1.0, 1.1], [0.1, 5.0]], requires_grad=True)
    nn_rows = nearest_neighbour(z, support)
    torch.testing.assert_close(nn_rows, support.detach()[[1, 2]])  # not the largest dot products (row 0)
    assert not nn_rows.requires_grad


@pytest.mark.parametrize("n,m,d", [(2, 5, 3), (5, 9, 4), (8, 4, 6)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nnclr_loss_matches_slow_reference(n, m, d, temperature):
    g = torch.Generator().manual_seed(n * 100 + m * 10 + d)
    z1, z2, p1, p2, support = randn(g, n, d), randn(g, n, d), randn(g, n, d), randn(g, n, d), randn(g, m, d)
    expected = slow_nnclr(z1, z2, p1, p2, support, temperature)
    assert nnclr_loss(z1, z2, p1, p2, support, temperature).item() == pytest.approx(expected, abs=1e-6)
    assert NNCLRLoss(temperature)(z1, z2, p1, p2, support).item() == pytest.approx(expected, abs=1e-6)


def test_nnclr_gradient_reaches_the_predictions_only():
    g = torch.Generator().manual_seed(1)
    z1, z2, p1, p2 = (randn(g, 4, 3).requires_grad_() for _ in range(4))
    nnclr_loss(z1, z2, p1, p2, randn(g, 6, 3)).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_nnclr_with_aligned_neighbours_and_predictions_gives_low_loss():
    support = 5 * torch.eye(6, dtype=torch.float64)
    z = support + 0.1  # each sample's neighbour is its own support row
    low = nnclr_loss(z, z, support, support, support)
    high = nnclr_loss(z, z, support.roll(1, dims=0), support.roll(1, dims=0), support)
    assert low < 0.01 < 1 < high


@pytest.mark.parametrize("call,match", [
    (lambda: nearest_neighbour(torch.randn(3), torch.randn(4, 3)), r"\[N, d\]"),
    (lambda: nearest_neighbour(torch.randn(2, 3), torch.randn(4, 5)), r"support must be a \[K, 3\]"),
    (lambda: nearest_neighbour(torch.randn(2, 3), torch.randn(0, 3)), "support set is empty"),
    (lambda: nnclr_loss(*(torch.randn(2, 3),) * 3, torch.randn(3, 3), torch.randn(4, 3)), "predictions"),
    (lambda: nnclr_loss(*(torch.randn(2, 3),) * 2, *(torch.randn(2, 4),) * 2, torch.randn(4, 3)), "projections and predictions"),
    (lambda: nnclr_loss(*(torch.randn(2, 3),) * 4, torch.randn(4, 3), temperature=0), "temperature"),
    (lambda: NNCLRLoss(temperature=-0.1), "temperature"),
])
def test_nnclr_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- MoCo v3

@pytest.mark.parametrize("n,d", [(1, 3), (4, 5), (9, 8)])
@pytest.mark.parametrize("temperature", [0.2, 0.5, 1.0])
def test_mocov3_loss_matches_slow_reference(n, d, temperature):
    g = torch.Generator().manual_seed(n * 10 + d)
    q1, q2, k1, k2 = (randn(g, n, d) for _ in range(4))
    expected = slow_ctr(q1, k2, temperature) + slow_ctr(q2, k1, temperature)
    assert mocov3_loss(q1, q2, k1, k2, temperature).item() == pytest.approx(expected, abs=1e-6)
    assert MoCoV3Loss(temperature)(q1, q2, k1, k2).item() == pytest.approx(expected, abs=1e-6)


def test_mocov3_keys_get_no_gradient():
    g = torch.Generator().manual_seed(2)
    q1, q2, k1, k2 = (randn(g, 4, 3).requires_grad_() for _ in range(4))
    mocov3_loss(q1, q2, k1, k2).backward()
    assert k1.grad is None and k2.grad is None
    assert q1.grad.abs().sum() > 0 and q2.grad.abs().sum() > 0


@pytest.mark.parametrize("call,match", [
    (lambda: mocov3_loss(torch.randn(2, 3), torch.randn(3, 3), torch.randn(2, 3), torch.randn(2, 3)), "queries"),
    (lambda: mocov3_loss(*(torch.randn(2, 3),) * 3, torch.randn(2, 4)), "queries and keys"),
    (lambda: mocov3_loss(*(torch.randn(2, 3),) * 4, temperature=0), "temperature"),
    (lambda: MoCoV3Loss(temperature=0), "temperature"),
])
def test_mocov3_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- MAE

@pytest.mark.parametrize("c,h,w,patch", [(1, 4, 4, 2), (3, 6, 4, 2), (2, 6, 9, 3), (3, 5, 5, 1)])
def test_patchify_follows_the_index_formula_and_unpatchify_inverts_it(c, h, w, patch):
    g = torch.Generator().manual_seed(c * h * w)
    images = randn(g, 2, c, h, w)
    patches = patchify(images, patch)
    columns = w // patch
    assert patches.shape == (2, (h // patch) * columns, patch * patch * c)
    for n in range(2):
        for i in range(h // patch):
            for j in range(columns):
                for a in range(patch):
                    for b in range(patch):
                        for ch in range(c):
                            assert patches[n, i * columns + j, (a * patch + b) * c + ch] == images[n, ch, i * patch + a, j * patch + b]
    size = None if h == w else (h, w)
    assert torch.equal(unpatchify(patches, patch, size), images)


@pytest.mark.parametrize("n,length,values", [(1, 2, 2), (3, 5, 4), (2, 9, 12)])
@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_matches_slow_reference(n, length, values, norm_pix):
    g = torch.Generator().manual_seed(n * length * values)
    pred, target = randn(g, n, length, values), randn(g, n, length, values) * 3 + 1
    mask = (torch.rand(n, length, generator=g) < 0.6).double()
    mask[0, 0] = 1.0
    expected = slow_mae(pred, target, mask, norm_pix)
    assert mae_loss(pred, target, mask, norm_pix).item() == pytest.approx(expected, abs=1e-6)
    assert MAELoss(norm_pix)(pred, target, mask.bool()).item() == pytest.approx(expected, abs=1e-6)


def test_mae_only_masked_patches_count():
    g = torch.Generator().manual_seed(3)
    pred, target = randn(g, 2, 6, 4).requires_grad_(), randn(g, 2, 6, 4)
    mask = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.float64)
    changed = pred.detach().clone()
    changed[0, 1] += 5.0  # a visible patch
    assert mae_loss(changed, target, mask).item() == pytest.approx(mae_loss(pred, target, mask).item(), abs=1e-12)
    changed[0, 0] += 5.0  # a masked patch
    assert mae_loss(changed, target, mask).item() != pytest.approx(mae_loss(pred, target, mask).item(), abs=1e-3)
    mae_loss(pred, target, mask).backward()
    assert (pred.grad[mask == 0] == 0).all() and (pred.grad[mask == 1].abs().sum(-1) > 0).all()


def test_mae_norm_pix_target_ignores_each_patch_brightness_and_contrast():
    g = torch.Generator().manual_seed(4)
    pred, target = randn(g, 2, 5, 8), randn(g, 2, 5, 8)
    mask = torch.ones(2, 5)
    per_patch_affine = target * (torch.rand(2, 5, 1, generator=g, dtype=torch.float64) * 4 + 0.5) + randn(g, 2, 5, 1)
    assert mae_loss(pred, per_patch_affine, mask).item() == pytest.approx(mae_loss(pred, target, mask).item(), abs=1e-5)
    assert mae_loss(pred, per_patch_affine, mask, norm_pix=False) != pytest.approx(
        mae_loss(pred, target, mask, norm_pix=False).item(), abs=1e-3)


@pytest.mark.parametrize("n,length,ratio,keep", [(3, 16, 0.75, 4), (2, 196, 0.75, 49), (4, 10, 0.9, 1), (1, 2, 0.5, 1)])
def test_random_masking_keeps_a_random_subset_and_restores_the_order(n, length, ratio, keep):
    g = torch.Generator().manual_seed(length)
    kept, mask, restore = random_masking(n, length, ratio, g)
    assert kept.shape == (n, keep) and mask.shape == (n, length) and restore.shape == (n, length)
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(1) == length - keep).all()
    assert (torch.gather(mask, 1, kept) == 0).all()  # the kept patches are the visible ones
    for row in restore:
        assert sorted(row.tolist()) == list(range(length))  # a permutation
    assert torch.equal(restore.argsort(1)[:, :keep], kept)  # the inverse of the one whose head is kept


def test_random_masking_is_drawn_from_the_generator_per_sample():
    a = random_masking(64, 16, 0.75, torch.Generator().manual_seed(0))
    b = random_masking(64, 16, 0.75, torch.Generator().manual_seed(0))
    c = random_masking(64, 16, 0.75, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    assert len({tuple(row.tolist()) for row in a[1]}) > 32  # each image its own mask
    assert (a[1].mean(0) > 0).all()  # every patch position gets masked somewhere


def test_random_masking_restore_puts_decoder_tokens_back_in_image_order():
    g = torch.Generator().manual_seed(5)
    tokens = randn(g, 3, 8, 2)  # [N, L, width], patch l of image n
    kept, mask, restore = random_masking(3, 8, 0.5, g)
    visible = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, 2))
    laid_out = torch.cat([visible, torch.zeros(3, 4, 2, dtype=torch.float64)], 1)  # mask tokens = 0
    back = torch.gather(laid_out, 1, restore[..., None].expand(-1, -1, 2))
    assert torch.equal(back[mask == 0], tokens[mask == 0]) and (back[mask == 1] == 0).all()


@pytest.mark.parametrize("call,match", [
    (lambda: patchify(torch.randn(2, 3, 6, 5), 2), "multiples of patch=2"),
    (lambda: patchify(torch.randn(3, 6, 6), 2), r"\[N, C, H, W\]"),
    (lambda: patchify(torch.randn(1, 1, 4, 4), 0), "positive integer"),
    (lambda: unpatchify(torch.randn(2, 6, 4), 2), "pass size"),
    (lambda: unpatchify(torch.randn(2, 6, 4), 2, (4, 4)), "does not give 6 patches"),
    (lambda: unpatchify(torch.randn(2, 4, 6), 2), r"patch \* patch \* C"),
    (lambda: mae_loss(torch.randn(2, 4, 6), torch.randn(2, 4, 5), torch.ones(2, 4)), "same shape"),
    (lambda: mae_loss(torch.randn(2, 4, 6), torch.randn(2, 4, 6), torch.ones(2, 5)), r"mask must be \[N, L\]"),
    (lambda: mae_loss(torch.randn(2, 4, 1), torch.randn(2, 4, 1), torch.ones(2, 4)), "at least 2"),
    (lambda: MAELoss(eps=0), "eps"),
    (lambda: random_masking(2, 16, 0.0), r"mask_ratio must be in \(0, 1\)"),
    (lambda: random_masking(2, 16, 1.0), r"mask_ratio must be in \(0, 1\)"),
    (lambda: random_masking(2, 16, 0.99), "keeps 0 of 16"),
    (lambda: random_masking(0, 16, 0.5), "n >= 1"),
])
def test_mae_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- two processes against one

N, D, E = 8, 6, 4  # whole batch (4 per process), input size, embedding size
LENGTH, VALUES = 6, 5  # MAE: patches per image, values per patch


def net(seed: int, inputs: int = D, out: int = E) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, 5), nn.Tanh(), nn.Linear(5, out)).double()


class ProjectorPredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.projector, self.predictor = net(0), net(1, E, E)

    def forward(self, x):
        z = self.projector(x)
        return z, self.predictor(z)


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def nnclr_steps(model, x1, x2, support, part, gather_distributed):
    """Two NNCLR steps: the first against a fixed support set, whose view-1 projections fill an
    EmbeddingQueue (gathered from every process) that is the support set of the second."""
    queue, out = EmbeddingQueue(12, E).double(), []
    for step in range(2):
        (z1, p1), (z2, p2) = model(x1[step][part]), model(x2[step][part])
        loss = nnclr_loss(z1, z2, p1, p2, support if step == 0 else queue.filled()[0], 0.2, gather_distributed)
        loss.backward()
        out.append({"loss": loss.detach(), "grads": ddp_grads(unwrap(model))})
        model.zero_grad()
        queue.enqueue(z1.detach())
    out.append({"queue": queue.filled()[0].clone()})
    return out


def mocov3_step(model, target, x1, x2, gather_distributed):
    with torch.no_grad():
        k1, k2 = target(x1), target(x2)
    loss = mocov3_loss(model(x1), model(x2), k1, k2, 0.3, gather_distributed)
    loss.backward()
    return {"loss": loss.detach(), "grads": ddp_grads(unwrap(model))}


def mae_step(model, patches, mask):
    loss = mae_loss(model(patches), patches, mask)
    loss.backward()
    return {"loss": loss.detach(), "grads": ddp_grads(unwrap(model))}


def _worker(rank, world, data):
    part = slice(rank * N // world, (rank + 1) * N // world)
    ddp = nn.parallel.DistributedDataParallel
    x1, x2 = data["x1"][part], data["x2"][part]
    return {"nnclr": nnclr_steps(ddp(ProjectorPredictor()), data["nn_x1"], data["nn_x2"], data["support"], part, True),
            "mocov3": mocov3_step(ddp(net(2)), net(3), x1, x2, True),
            "mocov3_local": mocov3_step(ddp(net(2)), net(3), x1, x2, False),
            "mae": mae_step(ddp(net(4, VALUES, VALUES)), data["patches"][part], data["mask"][part])}


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(21)
    return {"nn_x1": randn(g, 2, N, D), "nn_x2": randn(g, 2, N, D), "support": randn(g, 5, E),
            "x1": randn(g, N, D), "x2": randn(g, N, D),
            "patches": randn(g, N, LENGTH, VALUES), "mask": random_masking(N, LENGTH, 0.5, g)[1].double()}


@pytest.fixture(scope="module")
def results(data):
    return run_distributed(_worker, data)


def assert_step_matches(steps, expected, atol=1e-6):
    assert (sum(r["loss"] for r in steps) / len(steps)).item() == pytest.approx(expected["loss"].item(), abs=atol)
    for key, grad in expected["grads"].items():
        assert grad.abs().sum() > 0, key
        for r in steps:
            torch.testing.assert_close(r["grads"][key], grad, atol=atol, rtol=0, msg=key)


def test_nnclr_two_processes_equal_one_process_with_the_queue_as_support(data, results):
    expected = nnclr_steps(ProjectorPredictor(), data["nn_x1"], data["nn_x2"], data["support"], slice(None), False)
    for step in range(2):
        assert_step_matches([r["nnclr"][step] for r in results], expected[step])
    for r in results:  # the queue holds every process's projections, in batch order
        torch.testing.assert_close(r["nnclr"][2]["queue"], expected[2]["queue"], atol=1e-9, rtol=0)


def test_mocov3_two_processes_equal_one_process(data, results):
    assert_step_matches([r["mocov3"] for r in results], mocov3_step(net(2), net(3), data["x1"], data["x2"], False))


def test_mocov3_with_local_keys_only_would_be_caught(data, results):
    expected = mocov3_step(net(2), net(3), data["x1"], data["x2"], False)
    assert (results[0]["mocov3_local"]["loss"] + results[1]["mocov3_local"]["loss"]).item() / 2 != pytest.approx(
        expected["loss"].item(), abs=1e-3)


def test_mae_two_processes_equal_one_process(data, results):
    assert_step_matches([r["mae"] for r in results], mae_step(net(4, VALUES, VALUES), data["patches"], data["mask"]))
