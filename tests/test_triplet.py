import pytest
import torch

from selfsup.losses import TripletLoss, triplet_loss
from dist_utils import assert_matches_one_process, ddp_grads, run_distributed


def slow_triplet(e: torch.Tensor, y: torch.Tensor, margin: float, mining: str) -> float:
    """The mining rules written out pair by pair, distances as explicit sums of squares."""
    rows = [r.double() for r in e]
    labels = [int(v) for v in y]
    n = len(rows)

    def dist(a, b):
        return sum((float(rows[a][k]) - float(rows[b][k])) ** 2 for k in range(len(rows[a])))

    terms = []
    for a in range(n):
        positives = [p for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [dist(a, q) for q in range(n) if labels[q] != labels[a]]
        if not positives or not negatives:
            continue
        if mining == "batch-hard":
            terms.append(max(max(dist(a, p) for p in positives) - min(negatives) + margin, 0.0))
            continue
        for p in positives:
            d_ap = dist(a, p)
            farther = [d for d in negatives if d > d_ap]
            d_an = min(farther) if farther else max(negatives)
            terms.append(max(d_ap - d_an + margin, 0.0))
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("mining", ["semi-hard", "batch-hard"])
@pytest.mark.parametrize("n,d,classes", [(4, 3, 2), (9, 5, 3), (24, 8, 6), (32, 4, 4)])
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
def test_matches_slow_reference(mining, n, d, classes, margin):
    g = torch.Generator().manual_seed(n * 31 + d)
    e = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    expected = slow_triplet(e, y, margin, mining)
    assert triplet_loss(e, y, margin, mining).item() == pytest.approx(expected, abs=1e-6)
    assert TripletLoss(margin, mining)(e, y).item() == pytest.approx(expected, abs=1e-6)


def test_semi_hard_picks_the_nearest_farther_negative_and_falls_back_to_the_farthest():
    # 1-d points: anchor 0 and positive at 1 (d_ap = 1); negatives at d = 0.25, 4, 9
    e = torch.tensor([[0.0], [1.0], [0.5], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2, 3])
    # pair (0, 1): negatives of 0 at 0.25, 4, 9 -> semi-hard 4: max(1 - 4 + 5, 0) = 2
    # pair (1, 0): negatives of 1 at 0.25, 1, 4 -> none > 1 is 4 -> max(1 - 4 + 5, 0) = 2
    assert triplet_loss(e[:5], y, margin=5.0).item() == pytest.approx(2.0)
    # negatives all nearer than the positive: fall back to the farthest one
    e = torch.tensor([[0.0], [3.0], [1.0], [-2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2])
    # pair (0, 1): d_ap = 9, negatives 1, 4 -> 4 -> 9 - 4 + 0.5; pair (1, 0): d_ap 9, negatives 4, 25 -> 25 -> 0
    assert triplet_loss(e, y, margin=0.5).item() == pytest.approx((5.5 + 0.0) / 2)


def test_batch_hard_on_hand_computed_points():
    e = torch.tensor([[0.0], [1.0], [3.0], [0.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1])
    # anchors 0, 1, 2 (class 0): hardest positive 9, 4, 9; nearest negative (0.5) 0.25, 0.25, 6.25
    # anchor 3 has no positive and is left out
    expected = ((9 - 0.25 + 0.1) + (4 - 0.25 + 0.1) + (9 - 6.25 + 0.1)) / 3
    assert triplet_loss(e, y, margin=0.1, mining="batch-hard").item() == pytest.approx(expected)


def test_no_valid_triplet_gives_zero_with_a_graph():
    e = torch.randn(4, 3, requires_grad=True)
    for y in (torch.zeros(4, dtype=torch.long), torch.arange(4)):  # no negatives / no positives
        loss = triplet_loss(e, y)
        loss.backward()
        assert loss.item() == 0.0 and torch.equal(e.grad, torch.zeros_like(e))


def test_well_separated_clusters_give_zero_and_gradient_pulls_positives_together():
    y = torch.arange(3).repeat_interleave(2)
    centres = torch.eye(3) * 10
    assert triplet_loss(centres[y] + 0.01, y, margin=0.5).item() == 0.0
    e = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for mining in ("semi-hard", "batch-hard"):
        loss = triplet_loss(e, y, margin=5.0, mining=mining)
        (grad,) = torch.autograd.grad(loss, e)
        moved = e.detach() - 0.01 * grad
        assert triplet_loss(moved, y, margin=5.0, mining=mining) < loss


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(embeddings=torch.randn(4), labels=torch.zeros(4)), r"\[N, d\]"),
        (dict(embeddings=torch.randn(4, 2), labels=torch.zeros(5)), "labels"),
        (dict(embeddings=torch.randn(4, 2), labels=torch.zeros(4), margin=-1.0), "margin"),
        (dict(embeddings=torch.randn(4, 2), labels=torch.zeros(4), mining="hardest"), "mining"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        triplet_loss(**kwargs)


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()


def _two_process_step(rank, world, x, y):
    n = x.shape[0] // world
    part = slice(rank * n, (rank + 1) * n)
    out = {}
    for mining in ("semi-hard", "batch-hard"):
        model = torch.nn.parallel.DistributedDataParallel(_encoder())
        loss = triplet_loss(model(x[part]), y[part], margin=0.3, mining=mining, gather_distributed=True)
        loss.backward()
        out[mining] = {"loss": loss.detach(), "grads": ddp_grads(model.module)}
    return out


def test_two_processes_equal_one_process_with_the_whole_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    # unbalanced labels: the two halves hold different numbers of positive pairs
    y = torch.tensor([0, 0, 0, 0, 1, 2, 1, 2, 3, 3, 1, 0])
    results = run_distributed(_two_process_step, x, y)
    for mining in ("semi-hard", "batch-hard"):
        model = _encoder()
        loss = triplet_loss(model(x), y, margin=0.3, mining=mining)
        loss.backward()
        assert_matches_one_process([r[mining] for r in results], loss, model, atol=1e-6)
