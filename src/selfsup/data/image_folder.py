"""``image-folder``: your own images, found recursively under ``data.root``, decoded on load.

Layouts and labels (see :mod:`selfsup.data.file_index`): class folders (the first folder level
under the root is the class; images lying at the root are unlabelled, -1, and used for
self-supervised training), ``train/`` + ``test/`` (or ``val/``) folders of class folders, a flat
folder (all unlabelled), or any layout labelled by ``data.labels=<file.csv>`` (``path,label``).
Without a test folder a seeded, stratified ``data.test_fraction`` is held out. Each dataset
keeps the path of every sample relative to the root in ``.paths`` (``info["root"]`` is the
root), so embeddings can be written next to their file names.

Size, never distorted: the short side is resized (PIL, bilinear with antialiasing) and the
centre square cropped, to ``data.image_size`` px. Its default (None): the native size when
every image is at most 64 px and all share one size (the short side of that size; judged on a
sample of large folders, below), else 224 (lightly's convention for natural images). JPEGs are decoded at a reduced DCT scale that
stays at least that size (PIL's ``draft``), so random-resized crops come from a real image
of at least the training resolution.

Channels: grey (1 channel) if every image is grey (modes 1, L, LA, I;16*, I, F), else RGB
(3 channels; grey images replicated; a colour image in a grey dataset, possible only beyond the
probed sample, becomes its luma).
Modes are converted with their value range preserved:
- ``I;16`` / ``I;16B`` / ``I;16L`` (16-bit PNG and TIFF) and ``I`` (32-bit integers, how older
  PIL opens 16-bit PNGs): 16-bit values scaled to 8 bits by ``x >> 8`` (0..65535 -> 0..255;
  PIL's own ``convert("L")`` would clip them to 0/255);
- ``F`` (32-bit float): values in [0, 1] scaled by 255, otherwise clipped to 0..255;
- ``1``: 0/255; ``P`` (palette): its colours; ``CMYK``, ``YCbCr``: converted to RGB;
- an alpha channel or a transparent palette colour (``RGBA``, ``LA``, ``PA``, ``P`` with
  ``transparency``): composited on white, as the image shows on a white page.

Validation is lazy: the folder's listing (cached, :mod:`selfsup.data.file_index`) opens no
file, and at start-up only the headers (never pixels) of a fixed seeded sample of
``PROBE_FILES`` = 256 images (every image of a smaller folder) are read, for the size rule and
the channels above. So the default size is native when the sampled images are all at most
64 px and of one size; an image outside the sample of another size is resized like any other
(set ``data.image_size`` to decide). A file that fails in the sample or later when decoded (a
truncated JPEG, a PIL decompression bomb above ``PIL.Image.MAX_IMAGE_PIXELS``) is an error
naming the file and the fix, or, with ``data.skip_bad=true``, skipped: a sampled one leaves
the index; at load time (in any worker process) it is replaced by the next readable sample of
the split, image and label, and named once per process in a warning.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from selfsup.config.schema import DataConfig
from selfsup.data.base import RawSplits
from selfsup.data.file_index import FileDataset, UnreadableFile, index_folder
from selfsup.data.registry import DatasetNotFound, dataset
from selfsup.data.splits import split_off

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
BACKGROUND = (255, 255, 255, 255)  # transparent pixels are composited on white
NATIVE_MAX, NATURAL_SIZE = 64, 224  # default data.image_size: native up to 64 px, else 224
PROBE_FILES = 256  # image headers read at start-up (a seeded sample of larger folders)


def unreadable(path: Path, err: BaseException) -> UnreadableFile:
    hint = (" (above PIL's decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS; raise it if you trust the file)"
            if isinstance(err, Image.DecompressionBombError) else "")
    return UnreadableFile("image", path, err, hint)


def to_8bit(image: Image.Image, grey: bool) -> Image.Image:
    """Any PIL mode -> 8-bit 'L' (grey) or 'RGB', value range preserved (module docstring)."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32) >> 8
        image = Image.fromarray(values.astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if values.size and values.min() >= 0 and values.max() <= 1:
            values = values * 255
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    elif image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, BACKGROUND), image.convert("RGBA"))
    target = "L" if grey else "RGB"
    return image if image.mode == target else image.convert(target)


def centre_square(image: Image.Image, size: int) -> Image.Image:
    """Short side resized to ``size`` and the centre square cropped, in one resampling."""
    w, h = image.size
    if (w, h) == (size, size):
        return image
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))


def decode(path: Path, size: int, grey: bool) -> np.ndarray:
    """uint8 [size, size] (grey) or [size, size, 3] pixels of one file; UnreadableFile if it fails."""
    try:
        with Image.open(path) as image:
            image.draft("L" if grey else "RGB", (size, size))  # JPEG: decode at a scale still >= size
            return np.array(centre_square(to_8bit(image, grey), size))
    except Exception as err:  # PIL's format plugins raise many types on malformed files
        raise unreadable(path, err) from err


def probe(path: Path) -> tuple[tuple[int, int], bool]:
    """(width, height) and whether the image is grey, from its header only."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode in GREY_MODES
    except Exception as err:  # as in decode
        raise unreadable(path, err) from err


class ImageFiles(FileDataset):
    """Images read from ``root / paths[i]`` on load: uint8 [C, size, size], C = 1 if ``grey`` else 3."""

    stats_samples = 512

    def __init__(self, root: Path, paths: list[str], labels, targets: dict | None, skip_bad: bool, size: int,
                 grey: bool):
        super().__init__(root, paths, labels, targets, skip_bad)
        self.size, self.grey = int(size), bool(grey)

    def options(self) -> dict:
        return {"size": self.size, "grey": self.grey}

    def read(self, i: int) -> torch.Tensor:
        pixels = torch.from_numpy(decode(self.root / self.paths[i], self.size, self.grey))
        return pixels[None] if self.grey else pixels.permute(2, 0, 1)


def probe_files(root: Path, paths: list[str], skip_bad: bool) -> tuple[list[bool], list[tuple[int, int]], list[bool]]:
    """(readable mask over ``paths``, sizes and greyness of the probed readable ones). Probes
    every file up to PROBE_FILES, else a fixed seeded sample (the rest is checked on load)."""
    probed = range(len(paths)) if len(paths) <= PROBE_FILES else \
        np.sort(np.random.default_rng(0).choice(len(paths), PROBE_FILES, replace=False)).tolist()
    keep, sizes, greys, bad = [True] * len(paths), [], [], []
    for i in probed:
        try:
            size, grey = probe(root / paths[i])
        except UnreadableFile:
            if not skip_bad:
                raise
            keep[i] = False
            bad.append(paths[i])
            continue
        sizes.append(size)
        greys.append(grey)
    if bad:
        log.warning("data.skip_bad: skipped %d unreadable image(s), e.g. %s", len(bad), bad[0])
    return keep, sizes, greys


def default_image_size(sizes: list[tuple[int, int]]) -> int:
    """The native size (short side) when every image is at most 64 px and all share one size, else 224."""
    if len(set(sizes)) == 1 and max(sizes[0]) <= NATIVE_MAX:
        return min(sizes[0])
    return NATURAL_SIZE


@dataset("your images (data.root, recursive): class folders (loose images unlabelled), train/ + test/, flat "
         "(unlabelled) or data.labels=<csv>; short side resized + centre-cropped to data.image_size (default: "
         "native if all <= 64 px and one size, else 224)")
def image_folder(cfg: DataConfig, seed: int) -> RawSplits:
    if not cfg.root:
        raise DatasetNotFound("image-folder needs data.root=<folder of images or class subfolders>")
    index = index_folder(Path(cfg.root).expanduser(), IMAGE_SUFFIXES, cfg.labels, "image")
    paths = index.train + (index.test or [])
    labels = index.train_labels + (index.test_labels or [])
    keep, sizes, greys = probe_files(index.root, paths, cfg.skip_bad)
    if sum(keep[:len(index.train)]) < 2:
        raise DatasetNotFound(f"data.root {index.root} holds {sum(keep[:len(index.train)])} readable training "
                              "image(s); need at least 2")
    size = cfg.image_size or default_image_size(sizes)
    grey = all(greys)
    log.info("image-folder: %s images of %d x %d px%s", "grey" if grey else "RGB", size, size,
             "" if cfg.image_size else " (data.image_size default: native if all <= 64 px and one size, else 224)")
    everything = ImageFiles(index.root, [p for p, k in zip(paths, keep) if k], [y for y, k in zip(labels, keep) if k],
                            None, cfg.skip_bad, size, grey)
    n_train = sum(keep[:len(index.train)])
    if index.test is not None:
        train, test = everything.take(range(n_train)), everything.take(range(n_train, len(everything)))
    else:
        kept, held = split_off(everything.labels, cfg.test_fraction, seed)
        train, test = everything.take(kept), everything.take(held)
    return RawSplits(train, test, num_classes=len(index.class_names), class_names=index.class_names,
                     info={"root": str(index.root), "image_size": size})
