"""``image-folder``: images on disk, loaded lazily and resized to ``data.image_size``.

Layouts under ``data.root``:
- ``train/`` and ``test/`` (or ``val/``) folders, each of class subfolders;
- class subfolders: a seeded stratified ``data.test_fraction`` is held out for testing;
- a flat folder of images: unlabelled (label -1), with a held-out test fraction.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from selfsup.config.schema import DataConfig
from selfsup.data.base import UNLABELLED, IndexedDataset, RawSplits
from selfsup.data.registry import DatasetNotFound, register_dataset
from selfsup.data.splits import split_off

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
DEFAULT_IMAGE_SIZE = 64


class FileDataset(IndexedDataset):
    """Images read from files on demand, converted to ``mode`` ('L' or 'RGB'), resized square."""

    def __init__(self, paths: list[Path], labels: torch.Tensor, image_size: int, mode: str):
        self.paths, self.labels = list(paths), torch.as_tensor(labels, dtype=torch.long)
        self.image_size, self.mode = image_size, mode
        self.targets = {}

    def read(self, path: Path) -> torch.Tensor:
        try:
            with Image.open(path) as image:
                image = image.convert(self.mode).resize((self.image_size, self.image_size), Image.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise ValueError(f"cannot read image {path}: {err}. Remove or replace the file, "
                             "or set data.skip_bad=true to skip unreadable files") from err
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def load(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.read(self.paths[i]) for i in indices.tolist()])

    def take(self, indices) -> "FileDataset":
        index = torch.as_tensor(indices, dtype=torch.long)
        return FileDataset([self.paths[i] for i in index.tolist()], self.labels[index], self.image_size, self.mode)

    def with_labels(self, labels: torch.Tensor) -> "FileDataset":
        return FileDataset(self.paths, labels, self.image_size, self.mode)


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def labelled_files(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for k, name in enumerate(classes):
        if (folder / name).is_dir():
            files = image_files(folder / name)
            paths += files
            labels += [k] * len(files)
    return paths, labels


def readable(paths: list[Path], labels: list[int], skip_bad: bool) -> tuple[list[Path], list[int]]:
    """Check every file opens as an image; a bad one is an error naming it, or skipped and counted."""
    good_paths, good_labels, bad = [], [], []
    for path, label in zip(paths, labels):
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
            if not skip_bad:
                raise ValueError(f"cannot read image {path}: {err}. Remove or replace the file, "
                                 "or set data.skip_bad=true to skip unreadable files") from err
            bad.append(path)
            continue
        good_paths.append(path)
        good_labels.append(label)
    if bad:
        log.warning("data.skip_bad: skipped %d unreadable image(s), e.g. %s", len(bad), bad[0])
    return good_paths, good_labels


def colour_mode(paths: list[Path]) -> str:
    """'L' when the first images are all greyscale, else 'RGB'."""
    for path in paths[:50]:
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "1", "I;16", "I"):
                    return "RGB"
        except (OSError, UnidentifiedImageError):
            continue
    return "L"


@register_dataset("image-folder", "your images (data.root): class subfolders, train/ + test/ folders, or a flat folder")
def image_folder(cfg: DataConfig, seed: int) -> RawSplits:
    if not cfg.root:
        raise DatasetNotFound("image-folder needs data.root=<folder of images or class subfolders>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DatasetNotFound(f"data.root {root} is not a folder")
    size = cfg.image_size or DEFAULT_IMAGE_SIZE
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        classes = sorted({p.name for d in (root / "train", test_dir) for p in class_folders(d)})
        train_files = readable(*labelled_files(root / "train", classes), cfg.skip_bad)
        test_files = readable(*labelled_files(test_dir, classes), cfg.skip_bad)
        mode = colour_mode(train_files[0])
        train = FileDataset(*train_files, size, mode)
        test = FileDataset(*test_files, size, mode)
        return RawSplits(train, test, num_classes=len(classes), class_names=classes)
    classes = [p.name for p in class_folders(root)]
    if classes:
        paths, labels = readable(*labelled_files(root, classes), cfg.skip_bad)
    else:
        paths = image_files(root)
        paths, labels = readable(paths, [UNLABELLED] * len(paths), cfg.skip_bad)
    if len(paths) < 2:
        raise DatasetNotFound(f"data.root {root} holds {len(paths)} readable image(s); need at least 2")
    everything = FileDataset(paths, torch.tensor(labels), size, colour_mode(paths))
    keep, held = split_off(everything.labels, cfg.test_fraction, seed)
    return RawSplits(everything.take(keep), everything.take(held), num_classes=len(classes), class_names=classes)
