"""Which probes can run: those that need class labels are skipped, with the reason, on data
without at least two labelled classes in the bank and some labelled test samples."""
from __future__ import annotations

from typing import Optional

import torch

# evaluations that fit or score a classifier on class labels and nothing else (eval.registry names);
# ``layers`` skips its linear probe itself (skipped.layers.linear) and keeps its per-layer regression;
# ``finetune`` fine-tunes for a continuous target where there is one and skips itself otherwise
NEEDS_CLASS_LABELS = frozenset({"knn", "linear", "mlp", "lowshot"})


def labelled_classes(labels: torch.Tensor) -> int:
    """The number of distinct classes among the labelled (>= 0) entries of ``labels``."""
    return int(torch.unique(labels[labels >= 0]).numel())


def class_label_gap(bank_labels: torch.Tensor, test_labels: torch.Tensor) -> Optional[str]:
    """Why a class-label probe cannot run on this bank and test set, or None when it can: it
    needs labelled bank samples of at least 2 classes and at least one labelled test sample."""
    classes = labelled_classes(bank_labels)
    if classes < 2:
        return (f"needs class labels: the bank has {int((bank_labels >= 0).sum())} labelled sample(s) in "
                f"{classes} class(es), at least 2 classes are needed")
    if not bool((test_labels >= 0).any()):
        return "needs class labels: no test sample is labelled"
    return None


def online_probe_gap(pretrain_labels: torch.Tensor) -> Optional[str]:
    """Why the online probe of training did not run (:class:`selfsup.engine.module.SSLModule`
    builds it only with labelled pre-training samples of at least 2 classes), or None."""
    classes = labelled_classes(pretrain_labels)
    if classes < 2:
        return f"needs class labels: the pretrain split has labelled samples in {classes} class(es), at least 2 are needed"
    return None
