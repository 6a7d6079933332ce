"""The folder index: cached in the user's cache, never in the data folder (hit, miss, a changed
folder listed again, racy folders, an unwritable cache, a corrupt cache), built by one process while the others wait
(threads and two gloo processes), symbolic links; lazy validation of image-folder (only a
sample opened at start-up, a bad file named when loaded) and its size rule on that sample."""
import json
import os
import threading
import time

import pytest
import torch
import torch.distributed as dist
from PIL import Image

from selfsup.config import DataConfig
from selfsup.data import DATASETS
from selfsup.data import folder_scan
from selfsup.data import image_folder as folder_data
from selfsup.data.file_index import index_folder
from selfsup.data.image_folder import IMAGE_SUFFIXES
from dist_utils import run_distributed


def save(path, size=8, level=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), color=level).save(path)
    return path


def age(root, seconds=60):
    """Every folder under ``root`` last changed ``seconds`` ago (an old folder: its listings are
    reusable at once; a just-written one would be listed again for RACY_SECONDS)."""
    past = time.time() - seconds
    for here, _, _ in os.walk(root):
        os.utime(here, (past, past))


def class_tree(root, classes=("a", "b"), per_class=3):
    for c in classes:
        for k in range(per_class):
            save(root / c / f"{k}.png", level=k)
    age(root)
    return root


@pytest.fixture
def listed(monkeypatch):
    """The folders each scan lists (rather than reuses from the cache)."""
    calls = []
    real = folder_scan.list_folder
    monkeypatch.setattr(folder_scan, "list_folder", lambda path, *a: calls.append(path) or real(path, *a))
    return calls


def index(root):
    return index_folder(root, IMAGE_SUFFIXES, None, "image")


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "home-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "selfsup" / "file-index"


def cached(root):
    return folder_scan.cache_paths(root, IMAGE_SUFFIXES)[0]


def test_cache_hit_lists_nothing_and_gives_the_same_index(tmp_path, listed):
    root = class_tree(tmp_path / "data")
    first = index(root)
    assert len(listed) == 3 and cached(root).exists()  # the root and its two class folders
    assert first.train == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "b/2.png"]
    listed.clear()
    again = index(root)
    assert listed == [] and again == first


def test_a_changed_folder_is_listed_again_and_only_it(tmp_path, listed):
    root = class_tree(tmp_path / "data")
    index(root)
    listed.clear()
    save(root / "b" / "new.png")
    assert "b/new.png" in index(root).train and listed == [os.path.join(root, "b")]
    age(root)  # else b, listed just after its change, is listed again
    index(root)
    (root / "a" / "0.png").unlink()
    save(root / "c" / "0.png")  # a new class folder: the root changed too
    listed.clear()
    found = index(root)
    assert "a/0.png" not in found.train and "c/0.png" in found.train and found.class_names == ["a", "b", "c"]
    assert sorted(listed) == sorted(os.path.join(root, d) for d in ("", "a", "c"))


def test_a_listing_taken_right_after_a_change_is_not_reused(tmp_path, listed):
    root = tmp_path / "data"
    save(root / "0.png")
    index(root)  # the folder changed just now: a file added in the same clock tick could be missed
    listed.clear()
    save(root / "1.png")
    assert index(root).train == ["0.png", "1.png"] and listed


def test_nothing_is_written_into_the_data_folder(tmp_path, cache_home, listed):
    """torchvision's ImageFolder would read a cache folder in the root as a class."""
    root = class_tree(tmp_path / "data")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    first = index(root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert [p.name for p in cache_home.glob("*.json")] == [cached(root).name]
    listed.clear()
    assert index(root) == first and listed == []


def test_an_unwritable_cache_still_scans(tmp_path, monkeypatch, listed):
    root = class_tree(tmp_path / "data")

    def unwritable(path):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(folder_scan, "locked", unwritable)
    first = index(root)
    assert not cached(root).exists() and len(listed) == 3
    assert first.train == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "b/2.png"]


def test_a_corrupt_or_foreign_cache_is_rebuilt(tmp_path, listed):
    root = class_tree(tmp_path / "data")
    first = index(root)
    cached(root).write_text("{not json")
    listed.clear()
    assert index(root) == first and len(listed) == 3
    values = json.loads(cached(root).read_text())
    values["format"] = folder_scan.CACHE_FORMAT + 1
    cached(root).write_text(json.dumps(values))
    listed.clear()
    assert index(root) == first and len(listed) == 3


def test_links_are_followed_and_each_real_folder_read_once(tmp_path):
    root = class_tree(tmp_path / "data")
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)  # a cycle
    (root / "z").symlink_to(root / "b", target_is_directory=True)  # a second name for b: b is shallowest and first
    age(root)
    for _ in range(2):  # listed, then from the cache
        assert index(root).train == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "b/2.png"]


def test_one_process_builds_while_another_waits_and_reads(tmp_path, listed):
    root = class_tree(tmp_path / "data")
    cache = cached(root)
    result = {}
    with folder_scan.locked(cache.with_suffix(".lock")):  # as the builder holds it
        waiter = threading.Thread(target=lambda: result.update(scan=folder_scan.scan(root, [""], IMAGE_SUFFIXES)))
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and not cache.exists()  # it waits for the lock
        built = folder_scan.walk(root, [""], IMAGE_SUFFIXES, {})
        folder_scan.write_cache(cache, IMAGE_SUFFIXES, built.listings)
    waiter.join(10)
    assert result["scan"].listed == 0 and result["scan"].files == built.files


def _scan_in_process(rank, world, root):
    if rank == 0:  # a slow builder: whoever takes the lock first, the other has to wait for it
        real = folder_scan.list_folder
        folder_scan.list_folder = lambda *a: time.sleep(0.2) or real(*a)
    dist.barrier()
    found = folder_scan.scan(root, [""], IMAGE_SUFFIXES)
    return {"files": found.files, "listed": found.listed}


def test_two_processes_scan_the_folder_once(tmp_path):
    root = class_tree(tmp_path / "data")
    results = run_distributed(_scan_in_process, root)
    assert results[0]["files"] == results[1]["files"] == [index(root).train]
    assert sorted(r["listed"] for r in results) == [0, 3]


def raw(root, **kwargs):
    return DATASETS.get("image-folder").build(DataConfig(name="image-folder", root=str(root), **kwargs), 0)


def probed_paths(monkeypatch):
    probed = []
    real = folder_data.probe
    monkeypatch.setattr(folder_data, "probe", lambda path: probed.append(path.name) or real(path))
    return probed


def test_start_up_opens_only_a_sample_and_a_bad_file_is_named_when_loaded(tmp_path, monkeypatch, caplog):
    for k in range(20):
        save(tmp_path / f"{k:02d}.png", level=k)
    monkeypatch.setattr(folder_data, "PROBE_FILES", 4)
    probed = probed_paths(monkeypatch)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp) or real_open(fp, *a, **k))
    raw(tmp_path, test_fraction=0.0)
    assert len(probed) == 4 and len(opened) == 4
    bad = next(f"{k:02d}.png" for k in range(20) if f"{k:02d}.png" not in probed)
    (tmp_path / bad).write_bytes(b"not an image")  # changed in place: the cached listing stays valid
    train = raw(tmp_path, test_fraction=0.0).train
    position = train.paths.index(bad)
    with pytest.raises(ValueError, match=rf"{bad}.*data\.skip_bad=true"):
        train.load(torch.tensor([position]))
    train = raw(tmp_path, test_fraction=0.0, skip_bad=True).train
    assert len(train) == 20
    x = train.load(torch.tensor([position]))
    assert x.shape == (1, 1, 8, 8) and x.max() == position + 1  # the next file, whose grey level is its number
    assert f"skipped {bad}" in caplog.text


def test_default_size_is_judged_on_the_sample(tmp_path, monkeypatch):
    for k in range(20):
        save(tmp_path / f"{k:02d}.png", size=16)
    monkeypatch.setattr(folder_data, "PROBE_FILES", 8)
    probed = probed_paths(monkeypatch)
    raw(tmp_path, test_fraction=0.0)
    outside = next(f"{k:02d}.png" for k in range(20) if f"{k:02d}.png" not in probed)
    inside = probed[0]
    save(tmp_path / outside, size=100, level=200)  # a larger image the sample does not see
    data = raw(tmp_path, test_fraction=0.0)
    assert data.info["image_size"] == 16
    x = data.train.load(torch.tensor([data.train.paths.index(outside)]))
    assert x.shape == (1, 1, 16, 16) and int(x.min()) == 200  # resized like any other, never distorted
    save(tmp_path / inside, size=100)  # the sample sees two sizes: the natural-image default
    assert raw(tmp_path, test_fraction=0.0).info["image_size"] == 224
