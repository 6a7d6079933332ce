"""video-folder: clips decoded with PyAV from tiny videos of a moving square that the tests
write with the same library, in the clip layout of rotating-digits."""
import numpy as np
import pytest
import torch

from selfsup.config import DataConfig
from selfsup.data import DATASETS, build_data, make_loader

av = pytest.importorskip("av")


def write_video(path, frames=12, fps=10, size=(40, 32), speed=1, colour=False, start=2):
    """A white (or red) 8 px square moving ``speed`` px per frame to the right on black."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p" if colour else "yuv420p"
        stream.options = {"crf": "0"} if colour else {}
        for t in range(frames):
            image = np.zeros((height, width, 3), dtype=np.uint8)
            x = start + speed * t
            image[12:20, x:x + 8] = (255, 0, 0) if colour else 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_cfg(root, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(name="video-folder", root=str(root), **kwargs)


def square_column(frame: torch.Tensor) -> float:
    """Horizontal centre of mass of a [C, H, W] frame."""
    weight = frame.sum((0, 1))
    return float((weight * torch.arange(len(weight))).sum() / weight.sum())


def test_clips_in_the_rotating_digits_layout_with_targets(tmp_path):
    for k in range(2):
        write_video(tmp_path / "slow" / f"{k}.mp4", frames=20, speed=1)
        write_video(tmp_path / "fast" / f"{k}.mp4", frames=20, speed=2)
    (tmp_path / "targets.csv").write_text("path,speed\n" + "".join(
        f"{cls}/{k}.mp4,{speed}\n" for cls, speed in (("slow", 1), ("fast", 2)) for k in range(2)))
    splits = build_data(video_cfg(tmp_path, fps=5.0, seconds=2.0, image_size=16, targets=str(tmp_path / "targets.csv"),
                                  test_fraction=0.5), seed=0)
    assert splits.kind == "clip" and splits.input_shape == (10, 1, 16, 16)
    assert splits.info["fps"] == 5.0 and splits.info["target"] == "speed" and splits.class_names == ["fast", "slow"]
    assert len(splits.train) == 2 and len(splits.test) == 2
    for part in (splits.train, splits.test):
        clips = part.load(torch.arange(len(part)))
        assert clips.dtype == torch.float32 and float(clips.min()) >= 0 and float(clips.max()) <= 1
        for clip, path, speed, label in zip(clips, part.paths, part.targets["speed"], part.labels):
            assert float(speed) == (2.0 if path.startswith("fast/") else 1.0)
            assert label == (0 if path.startswith("fast/") else 1)
            # 5 fps of a 10 fps video: every other frame, the square 2 * speed px further each (x 16 / 32 px)
            moved = square_column(clip[4]) - square_column(clip[0])
            assert abs(moved - 4 * 2 * float(speed) * 16 / 32) < 1.0


def test_defaults_rgb_and_worker_decoding(tmp_path):
    for k in range(3):
        write_video(tmp_path / f"{k}.mp4", frames=8, fps=8, size=(24, 24), colour=True)
    write_video(tmp_path / "long.mp4", frames=16, fps=8, size=(24, 24), colour=True)
    splits = build_data(video_cfg(tmp_path, test_fraction=0.0), seed=0)
    # fps: the lowest frame rate; seconds: the shortest video; size: native (all 24 x 24 <= 64 px)
    assert splits.info["fps"] == 8.0 and splits.input_shape == (8, 3, 24, 24)
    clip = splits.train.load(torch.tensor([0]))[0]
    assert clip[0, 0, 15, 5] > 0.9 and clip[0, 1, 15, 5] < 0.1  # red
    in_worker = torch.cat([x for x, _ in make_loader(splits.train, 2, shuffle=False, num_workers=1)])
    assert torch.equal(in_worker, splits.train.load(torch.arange(4)))


def test_a_video_shorter_than_the_clip_is_named(tmp_path):
    write_video(tmp_path / "a.mp4", frames=20)
    write_video(tmp_path / "short.mp4", frames=5)
    with pytest.raises(ValueError, match=r"short\.mp4 lasts 0\.500 s, shorter than a clip.*lower data\.seconds"):
        build_data(video_cfg(tmp_path, seconds=1.5), seed=0)


@pytest.mark.parametrize("text, message", [
    ("path,rate\na.mp4,1\n", r"no row for b\.mp4"),
    ("path,rate\na.mp4,1\nb.mp4,2\nc.mp4,3\n", r"row 4: 'c\.mp4' is not a video found"),
    ("rate\n1\n2\n", "header row: path, then a name for each target"),
])
def test_bad_video_targets_are_named(tmp_path, text, message):
    for name in ("a", "b"):
        write_video(tmp_path / "v" / f"{name}.mp4", frames=4)
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        build_data(video_cfg(tmp_path / "v", targets=str(tmp_path / "t.csv")), seed=0)


def test_unreadable_video_is_named_or_skipped(tmp_path):
    for k in range(3):
        write_video(tmp_path / f"{k}.mp4", frames=4)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 20)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match=r"cannot read video .*broken\.mp4.*data\.skip_bad=true"):
        build_data(video_cfg(tmp_path), seed=0)
    raw = DATASETS.get("video-folder").build(video_cfg(tmp_path, skip_bad=True, test_fraction=0.0), 0)
    assert raw.train.paths == ["0.mp4", "1.mp4", "2.mp4"]
