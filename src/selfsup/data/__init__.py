"""Datasets by name (the table in ``selfsup.data.registry``), splits, and batch loading."""
from selfsup.data.base import UNLABELLED, ArrayDataset, DataSplits, IndexedDataset, RawSplits
from selfsup.data.build import build_data
from selfsup.data.loader import EpochShuffleSampler, make_loader
from selfsup.data.registry import DATASETS, DatasetEntry, DatasetNotFound, dataset

__all__ = [
    "UNLABELLED", "ArrayDataset", "DataSplits", "IndexedDataset", "RawSplits", "build_data",
    "EpochShuffleSampler", "make_loader", "DATASETS", "DatasetEntry", "DatasetNotFound", "dataset",
]
