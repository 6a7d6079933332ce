"""Momentum (EMA) networks, the cosine momentum schedule and the embedding queue. A MoCo step
in two processes against one process is in test_two_process_ssl.py."""
import io

import pytest
import torch
from torch import nn

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
