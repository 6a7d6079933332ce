"""Start-up time of ``selfsup train data.name=image-folder`` on folders of 10k / 50k / 200k files.

The script writes, once each (reused when complete), folders of small PNGs into
bench/results/folder_startup/: 28 x 28 grey Fashion-MNIST images (the Debian package
``dataset-fashion-mnist``; image k is sample k mod 70,000, in its class folder
``<class>/<k>.png``; random pixels when the package is absent). For each size it times, in
this process (Python imports excluded):

- index cold: the recursive scan of the folder (:func:`selfsup.data.file_index.index_folder`)
  with no cached index (the cache removed first), which also writes the cache;
- index warm: the same call again, read from the cache;
- start-up cold / warm: ``selfsup train`` (the default recipe, ``trainer.max_steps=1``) from
  the call of :func:`selfsup.engine.train.train` to the start of the first training step
  (``on_train_batch_start``): config, index, size rule, splits, channel statistics, model,
  Lightning, loader workers and the first batch; cold with the cached index removed first.

The folders' directories get an mtime 10 s in the past once written, so that a cache written
right after the files (a "racy" folder, see :mod:`selfsup.data.file_index`) counts as valid.
Writes bench/reports/speed/folder_startup.md.

    OMP_NUM_THREADS=1 nice -n 10 python bench/folder_startup.py [--sizes 10000 50000 200000]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

from selfsup.data.file_index import index_folder
from selfsup.data.folder_scan import cache_paths
from selfsup.data.idx import read_idx
from selfsup.data.image_folder import IMAGE_SUFFIXES
from selfsup.engine.configure import compose_config
from selfsup.engine.train import train

RESULTS = Path(__file__).parent / "results" / "folder_startup"
REPORT = Path(__file__).parent / "reports" / "speed" / "folder_startup.md"
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def fashion_pixels() -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 28, 28] images and their labels: Fashion-MNIST train + test, else random."""
    try:
        images = np.concatenate([read_idx(FASHION / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")])
        labels = np.concatenate([read_idx(FASHION / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")])
        return images, labels
    except ValueError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 10_000)


def write_folder(count: int) -> Path:
    """A class-folder tree of ``count`` 28 x 28 grey PNGs, written once (a marker file says complete)."""
    folder = RESULTS / f"png28-{count}"
    done = RESULTS / f"png28-{count}.complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    images, labels = fashion_pixels()
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for k in range(count):
        j = k % len(images)
        Image.fromarray(images[j]).save(folder / CLASSES[labels[j]] / f"{k:07d}.png", compress_level=1)
    past = time.time() - 10
    for d in [folder, *(folder / name for name in CLASSES)]:
        os.utime(d, (past, past))
    done.write_text(f"{count} files written in {time.perf_counter() - start:.0f} s\n")
    return folder


def drop_cache(folder: Path) -> None:
    for path in cache_paths(folder, IMAGE_SUFFIXES):
        path.unlink(missing_ok=True)


def timed_index(folder: Path) -> float:
    start = time.perf_counter()
    index_folder(folder, IMAGE_SUFFIXES, None, "image")
    return time.perf_counter() - start


class FirstStep(L.Callback):
    """Records when the first training step starts."""

    def __init__(self):
        self.at: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.at is None:
            self.at = time.perf_counter()


def startup_seconds(folder: Path, run_dir: Path) -> float:
    """From the call of train() to the start of the first training step."""
    shutil.rmtree(run_dir, ignore_errors=True)
    first = FirstStep()
    start = time.perf_counter()
    cfg = compose_config(None, ["data.name=image-folder", f"data.root={folder}", "trainer.max_steps=1",
                                f"run.dir={run_dir}", "trainer.enable_progress_bar=false"])
    train(cfg, callbacks=[first])
    shutil.rmtree(run_dir, ignore_errors=True)
    return first.at - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    args = parser.parse_args()
    rows = []
    for count in args.sizes:
        folder = write_folder(count)
        drop_cache(folder)
        cold = timed_index(folder)
        warm = timed_index(folder)
        drop_cache(folder)
        start_cold = startup_seconds(folder, RESULTS / "run")
        start_warm = startup_seconds(folder, RESULTS / "run")
        rows.append(f"| {count:,} | {cold:.2f} | {warm:.2f} | {start_cold:.1f} | {start_warm:.1f} |")
        print(rows[-1], flush=True)
    command = "OMP_NUM_THREADS=1 nice -n 10 python bench/folder_startup.py --sizes " + " ".join(map(str, args.sizes))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join([
        "# Image-folder start-up",
        "",
        "Seconds, in one process (Python imports excluded). Folders of 28 x 28 grey PNGs (Fashion-MNIST pixels) "
        "in 10 class folders, written by the script into bench/results/folder_startup/ (the files in the OS page "
        "cache: they were just written or read). *Index*: the recursive scan "
        "(`selfsup.data.file_index.index_folder`), cold = no cached index (it is built and written), warm = read "
        "from the cache. *Start-up*: `selfsup train data.name=image-folder data.root=<folder>` (default recipe) "
        "from the call of `train()` to the first training step (config, index, size rule on a 256-file sample, "
        "splits, channel statistics, model, Lightning, loader worker, first batch); cold = no cached index.",
        "",
        "| files | index cold s | index warm s | start-up cold s | start-up warm s |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}, PIL "
        f"{Image.__version__}; {time.strftime('%Y-%m-%d')}.",
        "",
    ]))
    print(f"wrote {REPORT}")


if __name__ == "__main__":
    main()
