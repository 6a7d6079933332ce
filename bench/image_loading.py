"""Image loading speed: selfsup's image-folder loader against torchvision's ImageFolder.

The script writes a folder of JPEGs (``--images``, default 2,048, in 4 class folders of
random smooth colour images, quality 90) once per source size into bench/results/, then
times full passes over it, decoding + resize + batching into uint8 [B, 3, S, S] tensors:

- selfsup: ``image-folder`` (``DATASETS.get("image-folder")``) + ``make_loader``: PIL decodes
  (JPEG at a reduced DCT scale that stays >= S, ``Image.draft``), short side resized and centre
  cropped in one ``resize(box=...)``, a batch per worker call (``__getitems__``);
- torchvision: ``ImageFolder`` with ``Resize(S) + CenterCrop(S) + PILToTensor()`` (PIL decodes
  the full image) + ``DataLoader``, per-sample fetch and default collation.

Both use the same ``--workers`` (default: selfsup's automatic count), batch 256, shuffled,
persistent workers; one untimed warm-up pass each (page cache, worker start), then
``--repeats`` timed passes, alternating the two loaders (the machine's load drifts); the table
gives the median images/s and the ratio selfsup / torchvision. Sizes:
96 px sources loaded at 96 px (decode + batch, no resize) and 256 px sources loaded at 224 px.

    python bench/image_loading.py --workers 1
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

from selfsup.config import DataConfig
from selfsup.data import DATASETS, make_loader
from selfsup.data.loader import auto_num_workers

RESULTS = Path(__file__).parent / "results" / "image_loading"
BATCH, CLASSES = 256, 4
CASES = ((96, 96), (256, 224))  # (source px, loaded px)


def write_folder(size: int, count: int) -> Path:
    """``count`` JPEGs of ``size`` x ``size`` px (smooth random colour fields), once."""
    folder = RESULTS / f"jpeg{size}-{count}"
    if len(list(folder.rglob("*.jpg"))) == count:
        return folder
    rng = np.random.default_rng(0)
    for k in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
        path = folder / f"class{k % CLASSES}" / f"{k:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
    return folder


def images_per_second(loader) -> float:
    """Images/s of one full pass."""
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += len(x)
    return seen / (time.perf_counter() - start)


def median_rates(loaders: list, repeats: int) -> list[float]:
    """Median images/s of each loader over ``repeats`` alternating passes, after a warm-up pass each."""
    for loader in loaders:
        images_per_second(loader)
    rates = [[images_per_second(loader) for loader in loaders] for _ in range(repeats)]
    return [statistics.median(r[k] for r in rates) for k in range(len(loaders))]


def selfsup_loader(folder: Path, size: int, workers: int):
    raw = DATASETS.get("image-folder").build(DataConfig(name="image-folder", root=str(folder), image_size=size,
                                                        test_fraction=0.0), 0)
    return make_loader(raw.train, BATCH, shuffle=True, num_workers=workers)


def torchvision_loader(folder: Path, size: int, workers: int):
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                                       persistent_workers=workers > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None, help="default: selfsup's automatic worker count")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    probe = DATASETS.get("image-folder").build(
        DataConfig(name="image-folder", root=str(write_folder(96, args.images)), test_fraction=0.0), 0).train
    workers = auto_num_workers(probe) if args.workers is None else args.workers
    turbo = features.check_feature("libjpeg_turbo")
    print(f"decoder: PIL {Image.__version__} (both loaders){' with libjpeg-turbo' if turbo else ''}; "
          f"{args.images} JPEGs, batch {BATCH}, {workers} worker(s), median of {args.repeats} passes")
    print("| source px | loaded px | selfsup img/s | torchvision img/s | ratio |")
    print("|---|---|---|---|---|")
    for source, size in CASES:
        folder = write_folder(source, args.images)
        ours, theirs = median_rates([selfsup_loader(folder, size, workers), torchvision_loader(folder, size, workers)],
                                    args.repeats)
        print(f"| {source} | {size} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}x |")


if __name__ == "__main__":
    main()
