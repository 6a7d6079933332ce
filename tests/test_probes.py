import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.eval import knn_accuracy, knn_predict, linear_probe_accuracy, topk_accuracy


def slow_knn_scores(bank, bank_labels, queries, num_classes, k, temperature):
    """For each query: sort the bank by cosine similarity, take the top k, add exp(sim/T) per class."""
    out = []
    for q in queries:
        sims = [(float(F.cosine_similarity(q, b, dim=0)), int(y)) for b, y in zip(bank, bank_labels)]
        sims.sort(key=lambda t: -t[0])
        scores = [0.0] * num_classes
        for sim, label in sims[:k]:
            scores[label] += math.exp(sim / temperature)
        out.append(scores)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("k,temperature", [(1, 0.1), (5, 0.07), (30, 1.0)])
def test_knn_scores_match_slow_reference(k, temperature):
    g = torch.Generator().manual_seed(k)
    bank, queries = torch.randn(30, 6, generator=g), torch.randn(7, 6, generator=g)
    labels = torch.randint(0, 4, (30,), generator=g)
    fast = knn_predict(bank, labels, queries, 4, k, temperature, chunk=3)
    torch.testing.assert_close(fast.double(), slow_knn_scores(bank, labels, queries, 4, k, temperature), rtol=1e-4,
                               atol=1e-4)


def test_topk_accuracy():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.3, 0.2, 0.5]])
    labels = torch.tensor([1, 2, 1])
    acc = topk_accuracy(scores, labels, ks=(1, 2))
    assert acc[1] == pytest.approx(1 / 3) and acc[2] == pytest.approx(2 / 3)


def test_knn_caps_k_and_ignores_unlabelled_bank_samples():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [1.0, 0.05]])
    labels = torch.tensor([0, 0, 1, 1, -1])
    acc = knn_accuracy(bank, labels, torch.tensor([[1.0, 0.02], [0.02, 1.0]]), torch.tensor([0, 1]), 2, k=200)
    assert acc[1] == 1.0


def test_linear_probe_beats_chance_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g) * 3
    y = torch.randint(0, 5, (400,), generator=g)
    x = centres[y] + torch.randn(400, 16, generator=g)
    assert linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.9
