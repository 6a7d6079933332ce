"""Two gloo processes on the CPU against one process with the whole batch (float64, 1e-6), for
every loss of issue 3 and for a MoCo step (queue and momentum encoder). One spawn runs every
case, since starting processes dominates the cost."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dist_utils import ddp_grads, run_distributed
from selfsup.losses.barlow_twins import barlow_twins_loss
from selfsup.losses.byol import byol_loss, simsiam_loss
from selfsup.losses.infonce import info_nce
from selfsup.losses.supcon import supcon_loss, supcon_queue_terms
from selfsup.losses.vicreg import vicreg_loss
from selfsup.models.momentum import EmbeddingQueue, MomentumNetwork

N = 16  # the whole batch; each of the 2 processes holds 8 samples
LABELS = torch.tensor([-1, 0, 0, 1, -1, 2, 1, 0, -1, -1, 1, 2, -1, -1, -1, 1])  # 2 and 5 unlabelled per half
QUEUE_LABELS = torch.tensor([0, -1, 2, 1, -1, 1])
LOSSES = ["info_nce", "supcon_all", "supcon_only", "supcon_queue_all", "supcon_queue_only",
          "byol", "simsiam", "barlow_twins", "vicreg", "barlow_twins_local"]


def net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()


def loss_of(name, model, target, x1, x2, labels, queue, gather_distributed):
    """One loss on the outputs of ``model`` (``target``: a fixed second network for BYOL)."""
    z1, z2 = model(x1), model(x2)
    gd = gather_distributed
    if name == "info_nce":
        return info_nce(z1, z2, queue, 0.3)
    if name.startswith("supcon_queue"):
        unsup, sup = supcon_queue_terms(z1, z2, labels, queue, QUEUE_LABELS, 0.3, unsup_method=name.rsplit("_", 1)[1],
                                        gather_distributed=gd)
        return unsup + 0.7 * sup
    if name.startswith("supcon"):
        return supcon_loss(z1, z2, labels, 0.3, reg_lambda=0.7, unsup_method=name.rsplit("_", 1)[1], gather_distributed=gd)
    if name == "byol":
        return byol_loss(z1, z2, target(x1), target(x2))
    if name == "simsiam":
        return simsiam_loss(z1, z2, z1, z2)
    if name == "vicreg":
        return vicreg_loss(z1, z2, gather_distributed=gd)
    # barlow_twins_local: each process's own statistics, not all-reduced: the mistake the
    # comparison must catch
    return barlow_twins_loss(z1, z2, lambda_offdiag=0.05, gather_distributed=gd and name == "barlow_twins")


def moco_step(online, target, queue, x1, x2, labels, m=0.9):
    """A MoCo step: loss against the queue, SGD step, EMA update, enqueue the keys."""
    optimizer = torch.optim.SGD(online.parameters(), lr=0.5)
    k = F.normalize(target(x2), dim=1)
    info_nce(online(x1), k, queue.filled()[0], 0.2).backward()
    optimizer.step()
    target.update([online.module if hasattr(online, "module") else online], m)
    queue.enqueue(k, labels)


def moco_state(target, queue):
    return {"queue": queue.embeddings.clone(), "labels": queue.labels.clone(), "ptr": queue.ptr.clone(),
            "count": queue.count.clone(), "target": [p.detach().clone() for p in target.parameters()]}


def run_moco(online, target, queue, x1, x2, labels, part):
    for step in range(2):  # 2 x 16 keys into 12 slots: the queue wraps around
        moco_step(online, target, queue, x1[step][part], x2[step][part], labels[step][part])
    return moco_state(target, queue)


def new_moco():
    online = net(0)
    return online, MomentumNetwork(online), EmbeddingQueue(12, 4, with_labels=True).double()


def _worker(rank, world, data):
    part = slice(rank * N // world, (rank + 1) * N // world)
    out = {}
    for name in LOSSES:
        model = nn.parallel.DistributedDataParallel(net(0))
        loss = loss_of(name, model, net(1), data["x1"][part], data["x2"][part], LABELS[part], data["queue"], True)
        loss.backward()
        out[name] = {"loss": loss.detach(), "grads": ddp_grads(model.module)}
    online, target, queue = new_moco()
    out["moco"] = run_moco(nn.parallel.DistributedDataParallel(online), target, queue, data["moco_x1"], data["moco_x2"],
                           data["moco_labels"], part)
    return out


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(4)
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    return {"x1": randn(N, 6), "x2": randn(N, 6) * 2, "queue": randn(6, 4), "moco_x1": randn(2, N, 6),
            "moco_x2": randn(2, N, 6), "moco_labels": torch.randint(-1, 3, (2, N), generator=g)}


@pytest.fixture(scope="module")
def results(data):
    return run_distributed(_worker, data)


def one_process(name, data):
    model = net(0)
    loss = loss_of(name, model, net(1), data["x1"], data["x2"], LABELS, data["queue"], False)
    loss.backward()
    return loss.item(), {k: p.grad for k, p in model.named_parameters()}


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "barlow_twins_local"])
def test_loss_and_gradients_equal_one_process(name, data, results):
    loss, grads = one_process(name, data)
    assert (sum(r[name]["loss"] for r in results) / len(results)).item() == pytest.approx(loss, abs=1e-6)
    for key, grad in grads.items():
        assert grad.abs().sum() > 0, key
        for r in results:
            torch.testing.assert_close(r[name]["grads"][key], grad, atol=1e-6, rtol=0, msg=f"{name} {key}")


def test_barlow_twins_with_local_statistics_would_be_caught(data, results):
    loss, grads = one_process("barlow_twins_local", data)
    r = results[0]["barlow_twins_local"]
    assert r["loss"].item() != pytest.approx(loss, abs=1e-3)
    assert not all(torch.allclose(r["grads"][k], g, atol=1e-6) for k, g in grads.items())


def test_moco_queue_and_momentum_encoder_equal_one_process(data, results):
    expected = run_moco(*new_moco(), data["moco_x1"], data["moco_x2"], data["moco_labels"], slice(None))
    assert int(expected["count"]) == 12 and int(expected["ptr"]) == 8
    assert not torch.allclose(expected["target"][0], net(0)[0].weight.detach())  # the encoder moved
    for r in results:
        for name in ("queue", "labels", "ptr", "count"):
            torch.testing.assert_close(r["moco"][name], expected[name], atol=1e-9, rtol=0, msg=name)
        for got, want in zip(r["moco"]["target"], expected["target"]):
            torch.testing.assert_close(got, want, atol=1e-9, rtol=0)
