"""image-folder: layouts and labels, sizes without distortion, modes with their value range,
skip_bad at start-up and at load time, and the loader's worker count."""
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.config import DataConfig
from selfsup.data import DATASETS, build_data, make_loader
from selfsup.data import image_folder as folder_data
from selfsup.data.base import ArrayDataset
from selfsup.data.loader import auto_num_workers


def build(root, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return build_data(DataConfig(name="image-folder", root=str(root), **kwargs), seed=0)


def raw(root, **kwargs):
    return DATASETS.get("image-folder").build(DataConfig(name="image-folder", root=str(root), **kwargs), 0)


def save(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def grey(level, size=(8, 8)):
    return Image.new("L", size, color=level)


def all_paths(splits):
    return sorted(splits.train.paths + splits.test.paths)


def test_nested_class_folders_and_loose_images_at_the_root(tmp_path, caplog):
    for k in range(3):
        save(tmp_path / "cat" / "indoor" / f"{k}.png", grey(10 * k))
        save(tmp_path / "dog" / "a" / "b" / f"{k}.png", grey(100 + k))
    save(tmp_path / "cat" / "top.png", grey(50))
    for k in range(2):
        save(tmp_path / f"loose{k}.png", grey(200 + k))
    with caplog.at_level(logging.INFO, logger="selfsup.data.file_index"):
        splits = raw(tmp_path, test_fraction=0.0)
    assert splits.num_classes == 2 and splits.class_names == ["cat", "dog"]
    by_path = dict(zip(splits.train.paths, splits.train.labels.tolist()))
    assert len(by_path) == 9
    assert by_path["cat/indoor/0.png"] == 0 and by_path["cat/top.png"] == 0 and by_path["dog/a/b/2.png"] == 1
    assert by_path["loose0.png"] == by_path["loose1.png"] == -1
    assert "7 labelled in 2 class(es) by class folders, 2 unlabelled" in caplog.text


def test_hidden_and_non_image_files_are_skipped_and_counted(tmp_path, caplog):
    for k in range(3):
        save(tmp_path / "a" / f"{k}.png", grey(k))
        save(tmp_path / "b" / f"{k}.png", grey(k))
    save(tmp_path / ".thumbnails" / "x.png", grey(0))
    save(tmp_path / "a" / ".hidden.png", grey(0))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "Thumbs.db").write_bytes(b"\x00" * 10)
    with caplog.at_level(logging.INFO, logger="selfsup.data.file_index"):
        splits = build(tmp_path, test_fraction=0.2)
    assert len(all_paths(splits)) == 6 and not any("." in p.split("/")[0] for p in all_paths(splits))
    assert "skipped 2 hidden and 2 non-image file(s)" in caplog.text


def test_flat_folder_is_unlabelled_and_paths_are_kept(tmp_path):
    for k in range(10):
        save(tmp_path / f"img{k}.png", grey(20 * k))
    splits = build(tmp_path, test_fraction=0.2)
    assert splits.num_classes == 0 and bool((splits.train.labels == -1).all())
    assert all_paths(splits) == sorted(f"img{k}.png" for k in range(10)) and splits.info["root"] == str(tmp_path)
    # each sample's pixels are those of its own file, also after take()
    part = splits.test.take([0])
    level = int(part.paths[0][3:-4]) * 20
    assert int(part.load(torch.tensor([0]))[0, 0, 0, 0]) == level


def test_train_and_test_folders_with_loose_training_images(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("x", "y"):
            for k in range(n):
                save(tmp_path / split / cls / f"{k}.png", grey(k))
    save(tmp_path / "train" / "loose.png", grey(9))
    splits = raw(tmp_path)
    assert len(splits.train) == 9 and len(splits.test) == 4 and splits.class_names == ["x", "y"]
    assert dict(zip(splits.train.paths, splits.train.labels.tolist()))["train/loose.png"] == -1
    assert all(p.startswith("test/") for p in splits.test.paths)


def test_labels_csv_labels_any_layout_partly(tmp_path):
    for k in range(10):
        save(tmp_path / "shots" / f"{k}.png", grey(k))
    rows = ["path,label", "shots/0.png,b", "./shots/1.png,a", "shots/2.png,", "shots/3.png,b"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    splits = raw(tmp_path, labels=str(tmp_path / "labels.csv"), test_fraction=0.0)
    assert splits.class_names == ["a", "b"] and splits.num_classes == 2  # sorted label strings
    by_path = dict(zip(splits.train.paths, splits.train.labels.tolist()))
    assert by_path["shots/0.png"] == 1 and by_path["shots/1.png"] == 0 and by_path["shots/3.png"] == 1
    assert by_path["shots/2.png"] == -1 and by_path["shots/9.png"] == -1  # empty label, or not listed


def test_numeric_labels_are_ordered_as_numbers(tmp_path):
    for k in range(3):
        save(tmp_path / f"{k}.png", grey(k))
    (tmp_path / "l.csv").write_text("path,label\n0.png,10\n1.png,2\n2.png,1\n")
    splits = raw(tmp_path, labels=str(tmp_path / "l.csv"), test_fraction=0.0)
    assert splits.class_names == ["1", "2", "10"]
    assert dict(zip(splits.train.paths, splits.train.labels.tolist())) == {"0.png": 2, "1.png": 1, "2.png": 0}


@pytest.mark.parametrize("rows, message", [
    (["path,label", "0.png,a", "missing.png,b"], r"row 3: 'missing.png' is not one of the image files under data.root"),
    (["path,label", "0.png,a", "1.png,b", "0.png,b"], r"row 4: '0.png' is listed twice \(first at row 2\)"),
    (["file,class", "0.png,a"], "header row naming the columns path,label"),
    (["path,label", "../0.png,a"], "row 2: '../0.png' is not one of the image files"),
])
def test_labels_csv_mistakes_name_the_row(tmp_path, rows, message):
    for k in range(3):
        save(tmp_path / "imgs" / f"{k}.png", grey(k))
    (tmp_path / "imgs" / "l.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=message):
        raw(tmp_path / "imgs", labels=str(tmp_path / "imgs" / "l.csv"))


def test_short_side_resized_and_centre_cropped_never_squashed(tmp_path):
    wide = np.zeros((20, 60), dtype=np.uint8)
    wide[:, 16:44] = 255  # the centre square (and the filter's margin) white, the sides black
    for k in range(3):
        save(tmp_path / f"{k}.png", Image.fromarray(wide))
    x = build(tmp_path, image_size=10, test_fraction=0.0).train.load(torch.arange(3))
    assert x.shape == (3, 1, 10, 10) and int(x.min()) == 255  # a squashed image would hold the black sides


def test_default_size_native_when_small_and_uniform_else_224(tmp_path):
    for k in range(3):
        save(tmp_path / "small" / f"{k}.png", grey(k, (20, 24)))
        save(tmp_path / "mixed" / f"{k}.png", grey(k, (20 + k, 20)))
    save(tmp_path / "big" / "0.png", grey(0, (100, 80)))
    save(tmp_path / "big" / "1.png", grey(0, (100, 80)))
    assert build(tmp_path / "small").input_shape == (1, 20, 20)
    assert build(tmp_path / "mixed").input_shape == (1, 224, 224)
    assert build(tmp_path / "big").input_shape == (1, 224, 224)
    assert build(tmp_path / "big", image_size=32).input_shape == (1, 32, 32)


@pytest.mark.parametrize("size", [0, -3])
def test_image_size_must_be_positive(tmp_path, size):
    for k in range(2):
        save(tmp_path / f"{k}.png", grey(k))
    with pytest.raises(ValueError, match=f"data.image_size must be a positive.*got {size}"):
        build(tmp_path, image_size=size)


def test_sixteen_bit_pngs_keep_their_grey_levels(tmp_path):
    levels = [int(v) for v in np.linspace(0, 65535, 20).round()]
    for k, level in enumerate(levels):
        path = save(tmp_path / f"{k:02d}.png", Image.fromarray(np.full((6, 6), level, dtype=np.uint16)))
        assert Image.open(path).mode == "I;16"
    splits = raw(tmp_path, test_fraction=0.0)
    x = splits.train.load(torch.arange(20))
    assert x.shape == (20, 1, 6, 6)
    got = [int(v) for v in x[:, 0, 0, 0]]
    assert got == [level >> 8 for level in levels] and len(set(got)) == 20


def test_32_bit_and_float_modes_keep_their_range(tmp_path):
    save(tmp_path / "a.tif", Image.fromarray(np.full((4, 4), 40000, dtype=np.int32), "I"))
    save(tmp_path / "b.tif", Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), "F"))
    x = raw(tmp_path, test_fraction=0.0).train.load(torch.arange(2))
    assert [int(v) for v in x[:, 0, 0, 0]] == [40000 >> 8, 128]


def test_alpha_composited_on_white_and_palette_colours_kept(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black: shows as the white page
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black: mid grey
    save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA"))
    palette = Image.new("P", (4, 4))
    palette.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    save(tmp_path / "b.png", palette)
    x = raw(tmp_path, test_fraction=0.0).train.load(torch.arange(2))
    assert x.shape == (2, 3, 4, 4)
    assert x[0, :, 0, 0].tolist() == [255, 0, 0] and x[0, :, 0, 1].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in x[0, :, 0, 2].tolist())
    assert x[1, :, 0, 0].tolist() == [0, 0, 255]


def test_channels_grey_only_when_every_image_is_grey(tmp_path):
    save(tmp_path / "g" / "a.png", grey(10))
    save(tmp_path / "g" / "b.png", Image.new("LA", (8, 8), (10, 255)))
    save(tmp_path / "g" / "c.png", Image.fromarray(np.full((8, 8), 3000, dtype=np.uint16)))
    assert build(tmp_path / "g").in_channels == 1
    save(tmp_path / "g" / "d.png", Image.new("RGB", (8, 8), (10, 200, 30)))
    splits = build(tmp_path / "g", test_fraction=0.0)
    assert splits.in_channels == 3
    x = splits.train.load(torch.arange(4))
    assert x[0, :, 0, 0].tolist() == [10, 10, 10] and x[3, :, 0, 0].tolist() == [10, 200, 30]


def write_jpegs(folder, count):
    rng = np.random.default_rng(0)
    for k in range(count):
        save(folder / f"{k}.jpg", Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))


def truncate(path):
    """Cut the scan data short: the header still opens, decoding fails."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    Image.open(path).verify()


def test_truncated_jpeg_found_at_load_time_is_named_or_skipped(tmp_path, caplog):
    write_jpegs(tmp_path, 8)
    truncate(tmp_path / "3.jpg")  # the header and verify() pass: only decoding fails
    with pytest.raises(ValueError, match=r"3\.jpg: image file is truncated.*data\.skip_bad=true"):
        build(tmp_path)
    splits = raw(tmp_path, skip_bad=True, test_fraction=0.0)
    assert len(splits.train) == 8  # found only when loaded
    with caplog.at_level(logging.WARNING, logger="selfsup.data.file_index"):
        x, y = splits.train.__getitems__([2, 3, 4])
    assert x.shape == (3, 3, 32, 32)
    assert torch.equal(x[1], x[2])  # 3.jpg is replaced by the next readable sample, 4.jpg
    assert "skipped 3.jpg" in caplog.text


def test_skip_bad_in_a_loader_worker_process(tmp_path):
    write_jpegs(tmp_path, 6)
    truncate(tmp_path / "5.jpg")
    splits = raw(tmp_path, skip_bad=True, test_fraction=0.0)
    in_main = torch.cat([x for x, _ in make_loader(splits.train, 4, shuffle=False, num_workers=0)])
    in_worker = torch.cat([x for x, _ in make_loader(splits.train, 4, shuffle=False, num_workers=1)])
    assert in_main.shape == (6, 3, 32, 32) and torch.equal(in_main, in_worker)
    assert torch.equal(in_main[5], in_main[0])  # the last file wraps round to the first


def test_unreadable_and_bomb_images_at_start_up(tmp_path, monkeypatch):
    for k in range(4):
        save(tmp_path / f"{k}.png", grey(k, (20, 20)))
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"junk\.png.*skip_bad"):
        raw(tmp_path)
    assert len(raw(tmp_path, skip_bad=True, test_fraction=0.0).train) == 4
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 20 x 20 px is now a "bomb" (> 2 x 100 px)
    with pytest.raises(ValueError, match=r"0\.png.*decompression-bomb limit.*skip_bad"):
        raw(tmp_path, skip_bad=False)
    save(tmp_path / "small0.png", grey(1, (5, 5)))
    save(tmp_path / "small1.png", grey(2, (5, 5)))
    kept = raw(tmp_path, skip_bad=True, test_fraction=0.0).train.paths
    assert kept == ["small0.png", "small1.png"]


def test_large_folders_probe_only_a_sample_of_headers(tmp_path, monkeypatch):
    for k in range(12):
        save(tmp_path / f"{k:02d}.png", grey(k))
    probed = []
    real_probe = folder_data.probe
    monkeypatch.setattr(folder_data, "PROBE_FILES", 5)
    monkeypatch.setattr(folder_data, "probe", lambda path: probed.append(path) or real_probe(path))
    assert len(raw(tmp_path, test_fraction=0.0).train) == 12 and len(probed) == 5


def test_workers_default_to_the_cores_for_file_datasets_only(tmp_path, monkeypatch):
    for k in range(2):
        save(tmp_path / f"{k}.png", grey(k))
    files = raw(tmp_path, test_fraction=0.0).train
    memory = ArrayDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cores, expected in ((1, 0), (2, 1), (4, 3), (32, 8)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert auto_num_workers(files) == expected and auto_num_workers(memory) == 0
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert auto_num_workers(files, world_size=2) == 7
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert auto_num_workers(files, world_size=8) == 3
    assert make_loader(memory, 2, shuffle=False).num_workers == 0
    with pytest.raises(ValueError, match="data.num_workers must be >= 0"):
        build(tmp_path, num_workers=-1)
