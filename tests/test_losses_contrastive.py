"""InfoNCE (MoCo), SupCon on partly labelled data, and SupCon against a queue (SupCon-MoCo).

Every loss is checked against a slow reference written as Python loops over the formula, and
the seed's test cases (../shared/seeds/supcon.txt) are ported with their expected values built
a second way. The two-process tests are in test_two_process_ssl.py."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.losses.infonce import InfoNCELoss, info_nce
from selfsup.losses.supcon import SupConLoss, supcon_loss, supcon_queue_terms, supcon_terms


def unit_rows(z: torch.Tensor) -> list[torch.Tensor]:
    return [F.normalize(r, dim=0) for r in z.double()]


def slow_row(anchor, positives, candidates, temperature) -> float:
    """-1/|P| sum_p log(exp(a.p/t) / sum_c exp(a.c/t)); 0 without a positive or a negative."""
    negatives = [c for c in candidates if not any(c is p for p in positives)]
    if not positives or not negatives:
        return 0.0
    denominator = sum(math.exp(float(anchor @ c) / temperature) for c in candidates)
    return -sum(math.log(math.exp(float(anchor @ p) / temperature) / denominator) for p in positives) / len(positives)


def slow_info_nce(q, k, queue, temperature) -> float:
    qs, ks, ns = unit_rows(q), unit_rows(k), unit_rows(queue)
    return sum(slow_row(a, [b], [b] + ns, temperature) for a, b in zip(qs, ks)) / len(qs)


def slow_supcon(z1, z2, labels, temperature, unsup_id, method) -> tuple[float, float]:
    """The module docstring's formula, set by set: views 0..2N-1, view i's partner i +- N."""
    n = len(labels)
    views = unit_rows(torch.cat([z1, z2]))
    label = [int(y) for y in labels] * 2
    unlabelled = [y == unsup_id for y in label]
    unsup, sup = [], []
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        if method == "all" or unlabelled[i]:
            others = [a for a in range(2 * n) if a != i and (method == "all" or unlabelled[a])]
            unsup.append(slow_row(views[i], [views[partner]], [views[a] for a in others], temperature))
        if not unlabelled[i]:
            others = [a for a in range(2 * n) if a != i and not unlabelled[a]]
            positives = [views[a] for a in others if label[a] == label[i]]
            sup.append(slow_row(views[i], positives, [views[a] for a in others], temperature))
    mean = lambda rows: sum(rows) / len(rows) if rows else 0.0  # noqa: E731
    return mean(unsup), mean(sup)


def slow_supcon_queue(q, k, labels, queue, queue_labels, temperature, unsup_id, method) -> tuple[float, float]:
    queries, keys = unit_rows(q), unit_rows(torch.cat([k, queue]))
    label = [int(y) for y in labels]
    key_label = label + [int(y) for y in queue_labels]
    unsup, sup = [], []
    for i, query in enumerate(queries):
        if method == "all" or label[i] == unsup_id:
            cands = [a for a in range(len(keys)) if method == "all" or key_label[a] == unsup_id]
            unsup.append(slow_row(query, [keys[i]], [keys[a] for a in cands], temperature))
        if label[i] != unsup_id:
            cands = [a for a in range(len(keys)) if key_label[a] != unsup_id]
            positives = [keys[a] for a in cands if key_label[a] == label[i]]
            sup.append(slow_row(query, positives, [keys[a] for a in cands], temperature))
    mean = lambda rows: sum(rows) / len(rows) if rows else 0.0  # noqa: E731
    return mean(unsup), mean(sup)


def randn(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# -- InfoNCE ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n,k,d", [(1, 3, 4), (5, 7, 16), (12, 30, 8)])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_matches_slow_reference(n, k, d, temperature):
    g = torch.Generator().manual_seed(n * 1000 + k)
    q, key, queue = randn(g, n, d), randn(g, n, d), randn(g, k, d)
    expected = slow_info_nce(q, key, queue, temperature)
    assert info_nce(q, key, queue, temperature).item() == pytest.approx(expected, abs=1e-6)
    assert InfoNCELoss(temperature)(q, key, queue).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_without_negatives_is_zero_and_keys_get_no_gradient():
    q, k = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    assert info_nce(q, k, None).item() == 0.0
    assert info_nce(q, k, torch.zeros(0, 8)).item() == 0.0
    info_nce(q, k, torch.randn(6, 8)).backward()
    assert q.grad.abs().sum() > 0 and k.grad is None


def test_info_nce_batch_keys_are_not_negatives():
    # the batch's other keys are not negatives: changing them leaves a query's loss alone
    g = torch.Generator().manual_seed(3)
    q, k, queue = randn(g, 1, 8), randn(g, 1, 8), randn(g, 5, 8)
    alone = info_nce(q, k, queue)
    q2, k2 = torch.cat([q, randn(g, 1, 8)]), torch.cat([k, randn(g, 1, 8)])
    first_row = F.cross_entropy(torch.cat([(F.normalize(q2) * F.normalize(k2)).sum(1, keepdim=True),
                                           F.normalize(q2) @ F.normalize(queue).T], 1) / 0.2,
                                torch.zeros(2, dtype=torch.long), reduction="none")[0]
    assert first_row.item() == pytest.approx(alone.item(), abs=1e-9)


@pytest.mark.parametrize("args,match", [
    ((torch.randn(4, 8), torch.randn(3, 8), None), r"\[N, d\]"),
    ((torch.randn(4, 8), torch.randn(4, 8), torch.randn(5, 7)), r"queue must be a \[K, 8\]"),
])
def test_info_nce_rejects_bad_shapes(args, match):
    with pytest.raises(ValueError, match=match):
        info_nce(*args)


def test_info_nce_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=-1.0)


# -- SupCon: slow reference -------------------------------------------------------------------

LABEL_PATTERNS = {
    "mixed": [0, 0, 1, -1, 2, -1, 1, 0],
    "all_unlabelled": [-1] * 5,
    "all_labelled": [3, 0, 0, 3, 1],
    "one_unlabelled": [1, 1, 2, -1],
    "one_class": [2, 2, 2],
}


@pytest.mark.parametrize("pattern", sorted(LABEL_PATTERNS))
@pytest.mark.parametrize("method", ["all", "only"])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_supcon_matches_slow_reference(pattern, method, temperature):
    labels = torch.tensor(LABEL_PATTERNS[pattern])
    g = torch.Generator().manual_seed(len(labels) * 17 + len(pattern))
    z1, z2 = randn(g, len(labels), 6), randn(g, len(labels), 6)
    unsup, sup = supcon_terms(z1, z2, labels, temperature, unsup_method=method)
    expected = slow_supcon(z1, z2, labels, temperature, -1, method)
    assert (unsup.item(), sup.item()) == pytest.approx(expected, abs=1e-6)
    total = supcon_loss(z1, z2, labels, temperature, reg_lambda=0.3, unsup_method=method)
    assert total.item() == pytest.approx(expected[0] + 0.3 * expected[1], abs=1e-6)


@pytest.mark.parametrize("pattern", sorted(LABEL_PATTERNS))
@pytest.mark.parametrize("method", ["all", "only"])
@pytest.mark.parametrize("temperature", [0.1, 0.7])
def test_supcon_queue_matches_slow_reference(pattern, method, temperature):
    labels = torch.tensor(LABEL_PATTERNS[pattern])
    n = len(labels)
    g = torch.Generator().manual_seed(n * 31 + len(pattern))
    q, k, queue = randn(g, n, 6), randn(g, n, 6), randn(g, 7, 6)
    queue_labels = torch.tensor([0, -1, 1, 2, 3, -1, 0])
    unsup, sup = supcon_queue_terms(q, k, labels, queue, queue_labels, temperature, unsup_method=method)
    expected = slow_supcon_queue(q, k, labels, queue, queue_labels, temperature, -1, method)
    assert (unsup.item(), sup.item()) == pytest.approx(expected, abs=1e-6)
    module = SupConLoss(temperature, reg_lambda=2.0, unsup_method=method)
    assert module(q, k, labels, queue, queue_labels).item() == pytest.approx(expected[0] + 2 * expected[1], abs=1e-6)


def test_supcon_queue_with_an_empty_queue_equals_contrasting_the_batch_keys():
    g = torch.Generator().manual_seed(5)
    q, k, labels = randn(g, 4, 6), randn(g, 4, 6), torch.tensor([0, 1, 1, -1])
    empty = supcon_queue_terms(q, k, labels, torch.zeros(0, 6), None)
    expected = slow_supcon_queue(q, k, labels, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), 0.1, -1, "all")
    assert tuple(t.item() for t in empty) == pytest.approx(expected, abs=1e-6)
    assert tuple(t.item() for t in supcon_queue_terms(q, k, labels)) == pytest.approx(expected, abs=1e-6)


# -- SupCon: the seed's cases, expected values built a second way --------------------------------

def nll_without_diagonal(pred: torch.Tensor, temperature: float) -> torch.Tensor:
    """-log_softmax of each row of the cosine similarities with the diagonal removed: the
    seed's `_remove_diag(F.normalize(pred) @ F.normalize(pred).T) / temp`. [2N, 2N - 1]."""
    sims = F.normalize(pred) @ F.normalize(pred).T / temperature
    m = sims.shape[0]
    off = sims.masked_select(~torch.eye(m, dtype=torch.bool)).view(m, m - 1)
    return -off.log_softmax(1)


def remove_diagonal(mask: torch.Tensor) -> torch.Tensor:
    m = mask.shape[0]
    return mask.masked_select(~torch.eye(m, dtype=torch.bool)).view(m, m - 1)


# the seed's positive masks: views [x1 of samples 0..N-1, x2 of samples 0..N-1]
SEED_OHE_1122 = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 1, 1],
                              [0, 0, 1, 1, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 1, 1, 0, 0],
                              [0, 0, 1, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0, 1, 1]])
SEED_PARTNER = [3, 4, 5, 6, 0, 1, 2, 3]  # the other view's column once the diagonal is removed
T = 0.1


def seed_pred(n: int, seed: int) -> torch.Tensor:
    return torch.randn(2 * n, 128, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def halves(pred):
    n = pred.shape[0] // 2
    return pred[:n], pred[n:]


def seed_unsup(pred) -> torch.Tensor:
    nll = nll_without_diagonal(pred, T)
    return torch.stack([nll[i, j] for i, j in enumerate(SEED_PARTNER)]).mean()


def seed_sup(pred, ohe) -> torch.Tensor:
    nll = nll_without_diagonal(pred, T)
    mask = remove_diagonal(ohe).bool()
    return torch.stack([row[m].sum() / m.sum() for row, m in zip(nll, mask)]).mean()


@pytest.mark.parametrize("method", ["all", "only"])
def test_seed_two_classes_no_unlabelled(method):
    # seed: yb = [1, 1, 2, 2], unsup_class_id = 0: 'all' -> other view vs all; 'only' -> 0
    pred, yb = seed_pred(4, 0), torch.tensor([1, 1, 2, 2])
    unsup, sup = supcon_terms(*halves(pred), yb, T, unsup_class_id=0, unsup_method=method)
    expected_unsup = seed_unsup(pred) if method == "all" else torch.tensor(0.0)
    assert unsup.item() == pytest.approx(expected_unsup.item(), abs=1e-9)
    assert sup.item() == pytest.approx(seed_sup(pred, SEED_OHE_1122).item(), abs=1e-9)


def test_seed_all_unlabelled():
    # seed: yb = [0, 0, 0, 0] with unsup_class_id 0: 'all' == 'only' == the explicit value; sup == 0
    pred, yb = seed_pred(4, 1), torch.tensor([0, 0, 0, 0])
    unsup_all, sup = supcon_terms(*halves(pred), yb, T, unsup_class_id=0, unsup_method="all")
    unsup_only, _ = supcon_terms(*halves(pred), yb, T, unsup_class_id=0, unsup_method="only")
    assert unsup_all.item() == pytest.approx(unsup_only.item(), abs=1e-12)
    assert unsup_all.item() == pytest.approx(seed_unsup(pred).item(), abs=1e-9)
    assert sup.item() == 0.0


def test_seed_one_unlabelled():
    # seed: yb = [1, 1, 2, 0], unsup_class_id 0
    pred, yb = seed_pred(4, 2), torch.tensor([1, 1, 2, 0])
    unsup_all, sup = supcon_terms(*halves(pred), yb, T, unsup_class_id=0, unsup_method="all")
    assert unsup_all.item() == pytest.approx(seed_unsup(pred).item(), abs=1e-9)
    unsup_only, _ = supcon_terms(*halves(pred), yb, T, unsup_class_id=0, unsup_method="only")
    assert unsup_only.item() == 0.0  # its only candidate is its own other view: no negative
    keep = torch.cat([yb, yb]) != 0
    ohe = torch.tensor([[1, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 1],
                        [1, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 0, 1]])
    assert sup.item() == pytest.approx(seed_sup(pred[keep], ohe).item(), abs=1e-9)


def test_class_zero_stays_labelled_by_default():
    # the default unsup_class_id is -1: class 0 is a real class, and only -1 is unlabelled
    pred = seed_pred(4, 3)
    labels = torch.tensor([0, 0, 2, 2])
    unsup_only, sup = supcon_terms(*halves(pred), labels, T, unsup_method="only")
    assert unsup_only.item() == 0.0  # nobody is unlabelled
    assert sup.item() == pytest.approx(seed_sup(pred, SEED_OHE_1122).item(), abs=1e-9)
    # marking the class-0 samples -1 is a different batch: they leave the supervised term
    unsup_only, sup_without = supcon_terms(*halves(pred), torch.tensor([-1, -1, 2, 2]), T, unsup_method="only")
    assert unsup_only.item() > 0 and sup_without.item() != pytest.approx(sup.item(), abs=1e-3)


def test_rows_without_negatives_give_zero_loss_and_finite_gradients():
    z1 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    for labels, method in [([5, 5, 5], "all"), ([5, 5, -1], "only"), ([-1, 5, 5], "only")]:
        unsup, sup = supcon_terms(z1, z2, torch.tensor(labels), unsup_method=method)
        loss = unsup + sup
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    assert supcon_terms(z1, z2, torch.tensor([5, 5, 5]))[1].item() == 0.0  # one class: no negative


# the seed's SupConMOCO case: 4 queries, their 4 keys, a queue of 8 with labels [1,1,2,2,1,1,2,2]
def seed_moco_batch():
    g = torch.Generator().manual_seed(11)
    q = F.normalize(randn(g, 4, 5))
    keys, queue = F.normalize(randn(g, 4, 5)), F.normalize(randn(g, 8, 5))
    return q, keys, torch.tensor([1, 1, 2, 2]), queue, torch.tensor([1, 1, 2, 2, 1, 1, 2, 2])


def soft_ce(logits, targets):
    return (F.cross_entropy(logits, targets.double(), reduction="none") / targets.sum(1)).mean()


def test_seed_moco_unsup_all_and_only():
    q, keys, labels, queue, queue_labels = seed_moco_batch()
    unsup, _ = supcon_queue_terms(q, keys, labels, queue, queue_labels, 0.07, unsup_class_id=0)
    logits = q @ torch.cat([keys, queue]).T / 0.07
    assert unsup.item() == pytest.approx(F.cross_entropy(logits, torch.arange(4)).item(), abs=1e-9)
    unsup, _ = supcon_queue_terms(q, keys, labels, queue, queue_labels, 0.07, unsup_class_id=1, unsup_method="only")
    logits = q[labels == 1] @ torch.cat([keys[labels == 1], queue[queue_labels == 1]]).T / 0.07
    assert unsup.item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0, 1])).item(), abs=1e-9)


def test_seed_moco_sup():
    q, keys, labels, queue, queue_labels = seed_moco_batch()
    _, sup = supcon_queue_terms(q, keys, labels, queue, queue_labels, 0.07, unsup_class_id=0)
    ohe = torch.tensor([[1, 1, 0, 0] * 3, [1, 1, 0, 0] * 3, [0, 0, 1, 1] * 3, [0, 0, 1, 1] * 3])
    assert sup.item() == pytest.approx(soft_ce(q @ torch.cat([keys, queue]).T / 0.07, ohe).item(), abs=1e-9)


def test_seed_moco_sup_with_an_extra_unlabelled_sample_anywhere():
    # seed: a 5th sample of the unlabelled class 3, appended or inserted, changes nothing
    q, keys, labels, queue, queue_labels = seed_moco_batch()
    _, base = supcon_queue_terms(q, keys, labels, queue, queue_labels, 0.07, unsup_class_id=3)
    extra_q, extra_k = F.normalize(torch.randn(1, 5, dtype=torch.float64)), F.normalize(torch.randn(1, 5, dtype=torch.float64))
    for at in (4, 2):
        q5 = torch.cat([q[:at], extra_q, q[at:]])
        k5 = torch.cat([keys[:at], extra_k, keys[at:]])
        y5 = torch.cat([labels[:at], torch.tensor([3]), labels[at:]])
        _, sup = supcon_queue_terms(q5, k5, y5, queue, queue_labels, 0.07, unsup_class_id=3)
        assert sup.item() == pytest.approx(base.item(), abs=1e-9)


def test_seed_moco_sup_with_one_labelled_class_left_is_zero():
    # unsup_class_id=2 leaves only class 1: every candidate is a positive, so there is no
    # negative. Issue 3 makes such rows contribute zero; the seed's own test expects the
    # positives-only cross-entropy here (a deliberate, documented deviation).
    q, keys, labels, queue, queue_labels = seed_moco_batch()
    _, sup = supcon_queue_terms(q, keys, labels, queue, queue_labels, 0.07, unsup_class_id=2)
    assert sup.item() == 0.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(labels=torch.tensor([0, 1, 2])), r"labels must be an integer tensor \[4\]"),
    (dict(labels=torch.zeros(4)), "integer"),
    (dict(unsup_method="some"), "unsup_method must be one of all, only"),
    (dict(temperature=0.0), "temperature"),
])
def test_supcon_rejects_bad_arguments(kwargs, match):
    args = dict(z1=torch.randn(4, 8), z2=torch.randn(4, 8), labels=torch.tensor([0, 1, -1, 1]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        supcon_terms(**args)


def test_supcon_queue_needs_queue_labels():
    with pytest.raises(ValueError, match="queue_labels"):
        supcon_queue_terms(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 1]), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"queue_labels must be an integer tensor \[3\]"):
        supcon_queue_terms(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 1]), torch.randn(3, 4),
                           torch.tensor([0, 1]))
