"""Wrong data is never used silently: an explicit data.root holds the dataset or is an error
naming it (no fallback to $SELFSUP_DATA or the system copy), and labels out of range name
their file."""
import pickle

import numpy as np
import pytest

from selfsup.config import DataConfig
from selfsup.data import DatasetNotFound, build_data
from selfsup.data import images as image_data
from test_data import write_idx


def write_fashion(folder, train_labels=None, splits=("train", "t10k")):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split in splits:
        n = 20
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        labels = np.arange(n) % 10 if split != "train" or train_labels is None else train_labels
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def system_copy(tmp_path, monkeypatch):
    """A complete Fashion-MNIST in $SELFSUP_DATA and as the Debian package: both must be ignored
    whenever data.root is given."""
    good = write_fashion(tmp_path / "system")
    monkeypatch.setenv("SELFSUP_DATA", str(good))
    monkeypatch.setattr(image_data, "debian_package_files",
                        lambda package: [good / "train-images-idx3-ubyte.gz"])
    return good


def test_the_system_copy_is_used_only_without_data_root(system_copy):
    assert len(build_data(DataConfig(name="fashion-mnist"), seed=0).test) == 20


def test_mistyped_fashion_mnist_root_is_an_error_naming_it(tmp_path, system_copy):
    wrong = tmp_path / "fashon-mnist"
    with pytest.raises(DatasetNotFound, match=f"data.root {wrong} does not exist"):
        build_data(DataConfig(name="fashion-mnist", root=str(wrong)), seed=0)


def test_root_with_only_the_train_files_names_what_is_missing(tmp_path, system_copy):
    half = write_fashion(tmp_path / "half", splits=("train",))
    with pytest.raises(DatasetNotFound, match=r"does not hold t10k-images-idx3-ubyte\(\.gz\), "
                                              r"t10k-labels-idx1-ubyte\(\.gz\)"):
        build_data(DataConfig(name="fashion-mnist", root=str(half)), seed=0)


def test_idx_labels_out_of_range_name_the_file(tmp_path):
    labels = np.arange(20) % 10
    labels[7] = 37
    folder = write_fashion(tmp_path / "bad", train_labels=labels)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: label 37 of sample 7 is outside 0\.\.9"):
        build_data(DataConfig(name="fashion-mnist", root=str(folder)), seed=0)


def write_cifar10(folder, test_labels):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = test_labels if name == "test_batch" else list(range(10))
        batch = {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))


@pytest.mark.parametrize("bad", [10, -2])
def test_cifar_labels_out_of_range_name_the_file(tmp_path, bad):
    write_cifar10(tmp_path / "cifar-10-batches-py", [0, 1, 2, bad, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match=rf"test_batch: label {bad} of sample 3 is outside 0\.\.9"):
        build_data(DataConfig(name="cifar10", root=str(tmp_path)), seed=0)


def test_cifar_unlabelled_minus_one_is_accepted(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", [-1] + list(range(1, 10)))
    assert int(build_data(DataConfig(name="cifar10", root=str(tmp_path)), seed=0).test.labels[0]) == -1


def test_cifar_explicit_root_is_never_replaced_by_selfsup_data(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "elsewhere" / "cifar-10-batches-py", list(range(10)))
    monkeypatch.setenv("SELFSUP_DATA", str(tmp_path / "elsewhere"))
    assert len(build_data(DataConfig(name="cifar10"), seed=0).test) == 10
    (tmp_path / "mine").mkdir()
    with pytest.raises(DatasetNotFound, match=rf"data.root {tmp_path / 'mine'} does not hold data_batch_1"):
        build_data(DataConfig(name="cifar10", root=str(tmp_path / "mine")), seed=0)
