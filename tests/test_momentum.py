"""Momentum (EMA) networks, the cosine momentum schedule and the embedding queue."""
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dist_utils import run_distributed
from selfsup.losses.infonce import info_nce
from selfsup.models.momentum import EmbeddingQueue, MomentumNetwork, cosine_momentum, ema_update


class Contrastive(nn.Module):
    """The seed's SupConMOCO test model: a scalar 'encoder' weight and a 1->5 projector of ones."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Parameter(torch.tensor([1.0]))
        self.projector = nn.Linear(1, 5, bias=False)
        nn.init.ones_(self.projector.weight)


def test_cosine_momentum_rises_from_base_to_one():
    assert cosine_momentum(0.996, 0.0) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 0.5) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 1.0) == pytest.approx(1.0)
    values = [cosine_momentum(0.99, p / 10) for p in range(11)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="progress"):
        cosine_momentum(0.99, 1.5)
    with pytest.raises(ValueError, match="momentum must be in"):
        cosine_momentum(1.2, 0.5)


def test_momentum_copy_starts_equal_and_frozen():
    online = Contrastive()
    target = MomentumNetwork(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert torch.all(target.net[0].projector.weight == 1) and torch.all(target.net[0].encoder == 1)
    online.projector.weight.data += 5  # the copy is a copy, not a view
    assert torch.all(target.net[0].projector.weight == 1)


def test_momentum_updated_value_after_known_steps():
    # the seed: parameters 1.0 -> 1.1 by a pseudo step, then target = m * 1 + (1 - m) * 1.1
    online, m = Contrastive(), 0.999
    target = MomentumNetwork(online)
    online.encoder.data += 0.1
    online.projector.weight.data += 0.1
    target.update([online], m)
    expected = 1 * m + 1.1 * (1 - m)
    torch.testing.assert_close(target.net[0].encoder, torch.full((1,), expected), rtol=0, atol=1e-7)
    torch.testing.assert_close(target.net[0].projector.weight, torch.full((5, 1), expected), rtol=0, atol=1e-7)
    target.update([online], m)
    expected = expected * m + 1.1 * (1 - m)
    torch.testing.assert_close(target.net[0].projector.weight, torch.full((5, 1), expected), rtol=0, atol=1e-7)


def test_momentum_network_runs_modules_in_sequence_without_a_graph():
    torch.manual_seed(0)
    encoder, projector = nn.Linear(3, 4), nn.Linear(4, 2)
    target = MomentumNetwork(encoder, projector)
    x = torch.randn(5, 3)
    out = target(x)
    torch.testing.assert_close(out, projector(encoder(x)))
    assert not out.requires_grad
    target.update([encoder, projector], 0.0)  # momentum 0 copies the online weights
    with pytest.raises(ValueError, match="different parameters"):
        target.update([projector, encoder], 0.5)
    with pytest.raises(ValueError, match="momentum must be in"):
        ema_update(target.parameters(), encoder.parameters(), -0.1)


def test_momentum_network_is_in_the_state_dict():
    online = Contrastive()
    holder = nn.Module()
    holder.online, holder.target = online, MomentumNetwork(online)
    online.encoder.data += 1
    holder.target.update([online], 0.5)
    restored = nn.Module()
    restored.online, restored.target = Contrastive(), MomentumNetwork(Contrastive())
    restored.load_state_dict(holder.state_dict())
    assert restored.target.net[0].encoder.item() == pytest.approx(1.5)


# -- the queue --------------------------------------------------------------------------------------

def keys(n, start=0.0, dim=5):
    return torch.arange(start, start + n).view(-1, 1).repeat(1, dim).float()


def test_queue_enqueues_in_order_and_wraps_around():
    # the seed: queue of 8, batches of 4 go to [:4] then [-4:], with their labels
    queue = EmbeddingQueue(8, 5, with_labels=True)
    assert queue.filled()[0].shape == (0, 5)
    first, second = keys(4), keys(4, 10)
    queue.enqueue(first, torch.tensor([1, 1, 2, 2]))
    assert torch.equal(queue.filled()[0], first) and int(queue.ptr) == 4
    queue.enqueue(second, torch.tensor([1, 1, 2, 2]))
    assert torch.equal(queue.embeddings[-4:], second)
    assert torch.equal(queue.labels, torch.tensor([1, 1, 2, 2, 1, 1, 2, 2]))
    assert int(queue.ptr) == 0 and int(queue.count) == 8
    third = keys(3, 20)
    queue.enqueue(third, torch.tensor([7, 8, 9]))  # wraps: the oldest three go
    assert torch.equal(queue.embeddings[:3], third) and torch.equal(queue.embeddings[3:], torch.cat([first[3:], second]))
    assert torch.equal(queue.labels, torch.tensor([7, 8, 9, 2, 1, 1, 2, 2])) and int(queue.ptr) == 3
    embeddings, labels = queue.filled()
    assert embeddings.shape == (8, 5) and labels.shape == (8,)


@pytest.mark.parametrize("batch", [3, 8, 11, 19])
def test_a_batch_equals_its_rows_enqueued_one_by_one(batch):
    whole, single = EmbeddingQueue(8, 5, with_labels=True), EmbeddingQueue(8, 5, with_labels=True)
    for q in (whole, single):
        q.enqueue(keys(5, 100), torch.arange(5))  # start mid-queue
    rows = keys(batch, 200)
    whole.enqueue(rows, torch.arange(batch) + 50)
    for i in range(batch):
        single.enqueue(rows[i:i + 1], torch.tensor([50 + i]))
    for name in ("embeddings", "labels", "ptr", "count"):
        assert torch.equal(getattr(whole, name), getattr(single, name)), name


def test_queue_survives_a_checkpoint_round_trip():
    queue = EmbeddingQueue(6, 5, with_labels=True)
    queue.enqueue(keys(4), torch.tensor([0, 1, -1, 3]))
    buffer = io.BytesIO()
    torch.save(queue.state_dict(), buffer)
    buffer.seek(0)
    restored = EmbeddingQueue(6, 5, with_labels=True)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("embeddings", "labels", "ptr", "count"):
        assert torch.equal(getattr(restored, name), getattr(queue, name)), name
    restored.enqueue(keys(3, 10), torch.tensor([5, 5, 5]))  # continues where it stopped
    assert torch.equal(restored.embeddings[4:], keys(2, 10)) and torch.equal(restored.embeddings[0], keys(1, 12)[0])


def test_queue_without_labels_keeps_none():
    queue = EmbeddingQueue(4, 3)
    queue.enqueue(torch.randn(2, 3))
    assert queue.filled()[1] is None and "labels" not in queue.state_dict()


@pytest.mark.parametrize("call,match", [
    (lambda q: q.enqueue(torch.randn(2, 4), torch.tensor([0, 1])), r"\[B, 5\]"),
    (lambda q: q.enqueue(torch.randn(2, 5)), "keeps labels: pass them"),
    (lambda q: q.enqueue(torch.randn(2, 5), torch.tensor([0, 1, 2])), "one label per embedding"),
])
def test_queue_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(EmbeddingQueue(4, 5, with_labels=True))
    with pytest.raises(ValueError, match="positive size"):
        EmbeddingQueue(0, 5)


# -- one MoCo step in two processes == one process ---------------------------------------------------

def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()


def moco_step(online, target, queue, x1, x2, labels, m=0.9):
    """A MoCo step: loss against the queue, SGD step, EMA update, enqueue the keys."""
    optimizer = torch.optim.SGD(online.parameters(), lr=0.5)
    k = F.normalize(target(x2), dim=1)
    loss = info_nce(online(x1), k, queue.filled()[0], 0.2)
    loss.backward()
    optimizer.step()
    target.update([online.module if hasattr(online, "module") else online], m)
    queue.enqueue(k, labels)
    return loss.detach()


def _state(target, queue):
    return {"queue": queue.embeddings.clone(), "labels": queue.labels.clone(), "ptr": queue.ptr.clone(),
            "count": queue.count.clone(), "target": [p.detach().clone() for p in target.parameters()]}


def _two_process_moco(rank, world, x1, x2, labels):
    n = x1.shape[1] // world  # x1: [steps, batch, features]
    part = slice(rank * n, (rank + 1) * n)
    net = _net()
    target, queue = MomentumNetwork(net), EmbeddingQueue(12, 4, with_labels=True).double()
    online = nn.parallel.DistributedDataParallel(net)
    for step in range(2):
        moco_step(online, target, queue, x1[step][part], x2[step][part], labels[step][part])
    return _state(target, queue)


def test_queue_and_target_after_two_process_steps_equal_one_process():
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(2, 8, 6, generator=g, dtype=torch.float64), torch.randn(2, 8, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(-1, 3, (2, 8), generator=g)
    online = _net()
    target, queue = MomentumNetwork(online), EmbeddingQueue(12, 4, with_labels=True).double()
    for step in range(2):
        moco_step(online, target, queue, x1[step], x2[step], labels[step])
    expected = _state(target, queue)
    assert int(expected["count"]) == 12 and int(expected["ptr"]) == 4  # 16 keys into 12 slots: wrapped
    for result in run_distributed(_two_process_moco, x1, x2, labels):
        for name in ("queue", "labels", "ptr", "count"):
            torch.testing.assert_close(result[name], expected[name], atol=1e-9, rtol=0, msg=name)
        for got, want in zip(result["target"], expected["target"]):
            torch.testing.assert_close(got, want, atol=1e-9, rtol=0)
    assert not math.isclose(float(expected["target"][0].sum()), float(_net()[0].weight.detach().sum()))
