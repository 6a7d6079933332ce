"""The dataset registry: every built-in dataset, by ``data.name``, in one table.

An entry is a :class:`DatasetEntry`: a builder ``(cfg: DataConfig, seed: int) -> RawSplits``
and the line ``selfsup datasets`` prints. A builder module marks its builders with
``@dataset("one line")``; the table below is what makes them known.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from selfsup.core.registry import Registry
from selfsup.data.base import RawSplits


@dataclass(frozen=True)
class DatasetEntry:
    build: Callable[..., RawSplits]
    description: str


def dataset(description: str) -> Callable[[Callable[..., RawSplits]], DatasetEntry]:
    """``@dataset("one line for `selfsup datasets`")`` on a builder makes it a DatasetEntry."""

    def wrap(build: Callable[..., RawSplits]) -> DatasetEntry:
        return DatasetEntry(build, description)

    return wrap


DATASETS: Registry[DatasetEntry] = Registry("dataset", {
    "fashion-mnist": "selfsup.data.images:fashion_mnist",
    "mnist": "selfsup.data.images:mnist",
    "digits": "selfsup.data.images:digits",
    "cifar10": "selfsup.data.images:cifar10",
    "cifar100": "selfsup.data.images:cifar100",
    "image-folder": "selfsup.data.image_folder:image_folder",
    "video-folder": "selfsup.data.video_folder:video_folder",
    "signals": "selfsup.data.user_signals:signals",
    "rotating-digits": "selfsup.data.rotating_digits:rotating_digits",
    "ppg-heartpy": "selfsup.data.signals:ppg_heartpy",
    "pig-cvp": "selfsup.data.signals:pig_cvp",
    "rotcolor-mnist": "selfsup.data.rotcolor:rotcolor_mnist",
    "adult": "selfsup.data.adult:adult",
})


class DatasetNotFound(FileNotFoundError):
    """A dataset that is not on this machine; the message says how to get it."""
