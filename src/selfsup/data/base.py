"""What every dataset gives the rest of the library: indexable samples with integer labels.

A sample is ``(input, label)``. Inputs are uint8 images ``[C, H, W]`` (0..255), float clips
``[T, C, H, W]``, float signals ``[T, C]`` or float table rows ``[D]``; labels are int64 class ids, with -1 marking an
unlabelled sample (real classes are never shifted). Regression targets (frequency, heart
rate, transformation parameters) ride along in ``targets``, a dict of float tensors ``[N, ...]``.

Every dataset answers ``__getitems__(indices)`` with an already-batched ``(inputs, labels)``
pair, so a DataLoader fetches a whole batch in one call (no per-sample collation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch.utils.data import Dataset

UNLABELLED = -1


class IndexedDataset(Dataset):
    """Base of every dataset here: ``labels`` (int64 [N]), ``targets`` (dict of float [N, ...]),
    ``take(indices)`` for subsets, and batched ``__getitems__``."""

    labels: torch.Tensor
    targets: dict[str, torch.Tensor]
    reads_files = False  # inputs decoded from files on load: loaders default to worker processes
    stats_samples = 10_000  # samples read for the channel statistics (fewer where loading is costly)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, indices: torch.Tensor) -> torch.Tensor:
        """Inputs of the given sample indices, stacked: [len(indices), ...]."""
        raise NotImplementedError

    def take(self, indices: Sequence[int] | torch.Tensor) -> "IndexedDataset":
        raise NotImplementedError

    def with_labels(self, labels: torch.Tensor) -> "IndexedDataset":
        """The same samples with other labels (e.g. most marked unlabelled)."""
        raise NotImplementedError

    def __getitem__(self, index: int):
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]):
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return self.load(index), self.labels[index]


class ArrayDataset(IndexedDataset):
    """Samples held in memory as one tensor (uint8 images, float clips or signals)."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, targets: Optional[dict] = None):
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.targets = dict(targets or {})

    def load(self, indices: torch.Tensor) -> torch.Tensor:
        return self.inputs[indices]

    def take(self, indices) -> "ArrayDataset":
        index = torch.as_tensor(indices, dtype=torch.long)
        return ArrayDataset(self.inputs[index], self.labels[index], {k: v[index] for k, v in self.targets.items()})

    def with_labels(self, labels: torch.Tensor) -> "ArrayDataset":
        return ArrayDataset(self.inputs, labels, self.targets)


@dataclass
class DataSplits:
    """A dataset ready for training and evaluation.

    train: every training sample (after ``data.limit``) with its real label: the kNN bank and
    the probes' training set in evaluation;
    pretrain: the same samples as the method sees them: labels of the validation part and,
    with ``data.labelled_fraction``, of all but that fraction are hidden (-1);
    val: the validation part of train (seeded, ``data.val_fraction``) with labels, for the
    online probe and hyper-parameter choice; test: read only by evaluation. ``kind`` is 'image', 'clip', 'signal' or 'tabular'. ``mean``/``std``
    are per-channel statistics of the training inputs on the 0..1 scale (images) or raw
    scale (signals), used by the encoder's input normalisation.
    """

    name: str
    train: IndexedDataset
    pretrain: IndexedDataset
    val: IndexedDataset
    test: IndexedDataset
    num_classes: int
    kind: str = "image"
    mean: tuple = (0.5,)
    std: tuple = (0.25,)
    class_names: list = field(default_factory=list)
    info: dict = field(default_factory=dict)  # e.g. fps of clips, sample rate of signals

    @property
    def input_shape(self) -> tuple:
        return tuple(self.train.load(torch.tensor([0])).shape[1:])

    @property
    def in_channels(self) -> int:
        shape = self.input_shape
        return shape[-1] if self.kind in ("signal", "tabular") else shape[-3]


@dataclass
class RawSplits:
    """What a dataset builder returns, before limit / validation / label-fraction handling."""

    train: IndexedDataset
    test: IndexedDataset
    num_classes: int
    kind: str = "image"
    class_names: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
