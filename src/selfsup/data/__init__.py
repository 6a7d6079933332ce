"""Datasets by name, splits, and batch loading.

Importing this package registers the built-in datasets."""
from selfsup.data import images as _images  # noqa: F401  (registers the built-in image datasets)
from selfsup.data import image_folder as _image_folder  # noqa: F401
from selfsup.data import rotating_digits as _rotating_digits  # noqa: F401  (rotating-digits)
from selfsup.data import signals as _signals  # noqa: F401  (ppg-heartpy, pig-cvp)
from selfsup.data import rotcolor as _rotcolor  # noqa: F401  (rotcolor-mnist)
from selfsup.data import adult as _adult  # noqa: F401  (adult)
from selfsup.data.base import UNLABELLED, ArrayDataset, DataSplits, IndexedDataset, RawSplits
from selfsup.data.build import build_data
from selfsup.data.loader import EpochShuffleSampler, make_loader
from selfsup.data.registry import DATASETS, DatasetNotFound, register_dataset

__all__ = [
    "UNLABELLED", "ArrayDataset", "DataSplits", "IndexedDataset", "RawSplits", "build_data",
    "EpochShuffleSampler", "make_loader", "DATASETS", "DatasetNotFound", "register_dataset",
]
