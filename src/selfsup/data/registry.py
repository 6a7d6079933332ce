"""The dataset registry: name -> builder ``(cfg: DataConfig, seed: int) -> RawSplits``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from selfsup.data.base import RawSplits
from selfsup.registry import Registry


@dataclass(frozen=True)
class DatasetEntry:
    build: Callable[..., RawSplits]
    description: str


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, description: str):
    """``@register_dataset("digits", "one line for `selfsup datasets`")`` on a builder."""

    def add(build):
        DATASETS.register(name)(DatasetEntry(build, description))
        return build

    return add


class DatasetNotFound(FileNotFoundError):
    """A dataset that is not on this machine; the message says how to get it."""
