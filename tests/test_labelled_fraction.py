"""data.labelled_fraction: a seeded, class-balanced fraction keeps its labels, the rest is -1."""
import pytest
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import UNLABELLED
from selfsup.data.build import build_data
from selfsup.data.splits import keep_labelled_fraction


def balanced_labels(per_class: int = 100, classes: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=g)]


def test_keeps_a_class_balanced_fraction():
    labels = balanced_labels()
    kept = keep_labelled_fraction(labels, 0.1, seed=0)
    assert int((kept != UNLABELLED).sum()) == 100
    assert torch.equal(torch.bincount(kept[kept != UNLABELLED], minlength=10), torch.full((10,), 10))


def test_unbalanced_classes_keep_their_shares():
    labels = torch.cat([torch.zeros(600), torch.ones(300), torch.full((100,), 2)]).long()
    kept = keep_labelled_fraction(labels, 0.05, seed=3)
    assert torch.bincount(kept[kept != UNLABELLED], minlength=3).tolist() == [30, 15, 5]


def test_kept_labels_are_the_real_ones_and_the_rest_is_unlabelled():
    labels = balanced_labels()
    kept = keep_labelled_fraction(labels, 0.25, seed=1)
    labelled = kept != UNLABELLED
    assert torch.equal(kept[labelled], labels[labelled])  # never shifted
    assert set(kept[~labelled].tolist()) == {UNLABELLED}
    assert torch.equal(labels, balanced_labels())  # the input is not modified


def test_class_zero_is_kept_as_a_real_class():
    labels = balanced_labels(per_class=20, classes=3)
    kept = keep_labelled_fraction(labels, 0.5, seed=0)
    assert int((kept == 0).sum()) == 10  # class 0 keeps half its samples, labelled 0
    assert int((kept == UNLABELLED).sum()) == 30


def test_is_seeded():
    labels = balanced_labels()
    assert torch.equal(keep_labelled_fraction(labels, 0.1, 7), keep_labelled_fraction(labels, 0.1, 7))
    assert not torch.equal(keep_labelled_fraction(labels, 0.1, 7), keep_labelled_fraction(labels, 0.1, 8))


def test_fraction_one_keeps_everything_and_tiny_fractions_keep_one():
    labels = balanced_labels(per_class=5)
    assert torch.equal(keep_labelled_fraction(labels, 1.0, 0), labels)
    assert int((keep_labelled_fraction(labels, 1e-6, 0) != UNLABELLED).sum()) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_rejects_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match=r"data.labelled_fraction must be in \(0, 1\]"):
        keep_labelled_fraction(balanced_labels(), fraction, 0)


def test_build_data_applies_it_to_the_pretraining_labels_only():
    cfg = DataConfig(name="digits", labelled_fraction=0.1, val_fraction=0.1)
    splits = build_data(cfg, seed=0)
    pre = splits.pretrain.labels
    labelled = pre != UNLABELLED
    assert torch.equal(pre[labelled], splits.train.labels[labelled])
    assert (splits.train.labels >= 0).all()  # the evaluation labels stay complete
    n_val = len(splits.val)
    assert int(labelled.sum()) == round(0.1 * (len(pre) - n_val))
    per_class = torch.bincount(pre[labelled], minlength=10)
    assert per_class.min() >= per_class.max() - 1  # balanced up to rounding (digits is near-balanced)
    again = build_data(cfg, seed=0).pretrain.labels
    assert torch.equal(pre, again)
    assert not torch.equal(pre, build_data(cfg, seed=1).pretrain.labels)
