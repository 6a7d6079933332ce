"""``video-folder``: clips from your own video files, for SimPer (or any method on clips).

Videos (.mp4, .avi, .mov, .mkv, .webm, .m4v, .mpg, .mpeg) are found recursively under
``data.root`` and labelled as image-folder's images are (:mod:`selfsup.data.file_index`: class
folders, ``train/`` + ``test/``, a flat folder = unlabelled, or ``data.labels``). They are
decoded with PyAV (FFmpeg; the optional extra ``video``: ``pip install 'selfsup[video]'``;
torchvision 0.22+ no longer decodes video) when a clip is loaded, in the loader's worker
processes.

A clip is the first ``data.seconds`` of a video sampled at ``data.fps`` frames per second
(each sample time takes the latest frame shown by then, so a rate above the video's own repeats
frames): ``floor(seconds * fps)`` frames, float ``[T, C, S, S]`` in 0..1, the layout of
``rotating-digits`` (kind "clip"). Defaults: ``data.fps`` the lowest frame rate among the
videos, ``data.seconds`` the shortest video's duration; a video shorter than the clip is an
error naming it. Frames have their short side resized (FFmpeg's area filter) and the centre
square cropped to ``data.image_size``: by default the native size when every video is at most
64 px and all share one size, else 64 (clips of many frames are costly). Grey (1 channel)
when the first frame of every video has equal red, green and blue (within 3 levels, for
codec rounding), else RGB.

``data.targets``: a CSV with a ``path`` column (relative to the root) and one column of
numbers per target (e.g. ``heart_rate``), one row for every video; the first target column is
``info["target"]``, the one the regression probe predicts. Videos are probed at start-up
(opened and their first frame decoded); a failure there or when a clip is decoded is an error
naming the file, or skipped with ``data.skip_bad=true``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import RawSplits
from selfsup.data.file_index import FileDataset, UnreadableFile, index_folder, relative_path
from selfsup.data.registry import DatasetNotFound, dataset
from selfsup.data.splits import split_off
from selfsup.data.user_signals import is_numeric, numbers, read_csv_rows

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
NATIVE_MAX, LARGE_VIDEO_SIZE = 64, 64  # default data.image_size: native up to 64 px, else 64
GREY_TOLERANCE = 3  # levels by which r, g, b of a grey video's frame may differ (codec rounding)
TIME_EPS = 1e-6  # seconds: a frame shown at t counts for sample times >= t - TIME_EPS


def pyav():
    try:
        import av
    except ImportError as err:
        raise DatasetNotFound("video-folder decodes with PyAV: `pip install 'selfsup[video]'` (or `pip install av`)") \
            from err
    return av


@dataclass(frozen=True)
class VideoProbe:
    rate: float  # frames per second
    seconds: float
    width: int
    height: int
    grey: bool


def probe(path: Path) -> VideoProbe:
    """Frame rate, duration, size and greyness (of the first frame) of one video."""
    av = pyav()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if stream.duration:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration:
                seconds = container.duration / 1e6
            else:
                seconds = stream.frames / rate if rate else 0.0
            rgb = next(container.decode(stream)).to_ndarray(format="rgb24").astype(np.int16)
        if rate <= 0 or seconds <= 0:
            raise ValueError(f"no frame rate or duration (rate {rate}, {seconds} s)")
    except Exception as err:  # FFmpeg and PyAV raise many types on malformed files
        raise UnreadableFile("video", path, err) from err
    grey = bool(np.abs(np.diff(rgb, axis=-1)).max() <= GREY_TOLERANCE)
    return VideoProbe(rate, seconds, stream.width, stream.height, grey)


def frame_pixels(frame, size: int, grey: bool) -> np.ndarray:
    """One decoded frame: short side resized to ``size``, centre square: uint8 [S, S] or [S, S, 3]."""
    scale = size / min(frame.width, frame.height)
    width, height = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    pixels = frame.reformat(width=width, height=height, format="gray" if grey else "rgb24",
                            interpolation="AREA").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return pixels[top:top + size, left:left + size]


def decode_clip(path: Path, times: np.ndarray, size: int, grey: bool) -> torch.Tensor:
    """Float [T, C, S, S] in 0..1: at each sample time, the latest frame shown by then (the
    first frame for times before it). Decodes from the start up to the last sample time."""
    av = pyav()
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 1)
            shown, frames = [], []
            for count, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else count / rate
                if frames and t - TIME_EPS > times[-1]:
                    break
                shown.append(t)
                frames.append(frame_pixels(frame, size, grey))
            if not frames:
                raise ValueError("no frame could be decoded")
    except Exception as err:  # as in probe
        raise UnreadableFile("video", path, err) from err
    pick = np.clip(np.searchsorted(np.asarray(shown), times + TIME_EPS, side="right") - 1, 0, None)
    clip = torch.from_numpy(np.stack([frames[k] for k in pick])).float().div_(255.0)
    return clip[:, None] if grey else clip.permute(0, 3, 1, 2).contiguous()


class VideoFiles(FileDataset):
    """Clips decoded from ``root / paths[i]`` on load: float [T, C, S, S] in 0..1."""

    stats_samples = 32

    def __init__(self, root: Path, paths: list[str], labels, targets: dict | None, skip_bad: bool,
                 times: list[float], size: int, grey: bool):
        super().__init__(root, paths, labels, targets, skip_bad)
        self.times, self.size, self.grey = list(times), int(size), bool(grey)

    def options(self) -> dict:
        return {"times": self.times, "size": self.size, "grey": self.grey}

    def read(self, i: int) -> torch.Tensor:
        return decode_clip(self.root / self.paths[i], np.asarray(self.times), self.size, self.grey)


def read_video_targets(path: Path, root: Path, videos: list[str]) -> dict[str, np.ndarray]:
    """Target name -> float32 [len(videos)] from a CSV of ``path`` + one column per target."""
    rows = read_csv_rows(path, "data.targets")
    header = [h.strip() for h in rows[0][1]] if rows else []
    if "path" not in header or len(header) < 2 or is_numeric(header):
        raise ValueError(f"data.targets {path} must start with a header row: path, then a name for each target "
                         "(e.g. path,heart_rate)")
    col = header.index("path")
    names = [h for k, h in enumerate(header) if k != col]
    if "" in names or len(set(names)) != len(names):
        raise ValueError(f"data.targets {path}: header {header} must name every column once")
    position = {p: k for k, p in enumerate(videos)}
    table = np.full((len(videos), len(names)), np.nan, dtype=np.float32)
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(f"data.targets {path} row {number}: {len(row)} values for {len(header)} columns")
        video = relative_path(row[col], root)
        if video not in position:
            raise ValueError(f"data.targets {path} row {number}: {row[col]!r} is not a video found under data.root "
                             f"{root} (paths are relative to data.root)")
        if not np.isnan(table[position[video]]).all():
            raise ValueError(f"data.targets {path} row {number}: {row[col]!r} is listed twice; give each video one row")
        table[position[video]] = numbers([c for k, c in enumerate(row) if k != col], path, number, "data.targets")
    missing = np.flatnonzero(np.isnan(table).any(1))
    if len(missing):
        raise ValueError(f"data.targets {path} has no row for {videos[missing[0]]} ({len(missing)} video(s) without "
                         "targets); give every video one row")
    return {name: table[:, k] for k, name in enumerate(names)}


@dataset("your videos (data.root, recursive; PyAV, extra `video`): clips of data.seconds at data.fps (default: "
         "shortest video, lowest rate), short side resized + centre-cropped to data.image_size (default: native "
         "if all <= 64 px and one size, else 64); data.targets=<csv path + target columns>")
def video_folder(cfg: DataConfig, seed: int) -> RawSplits:
    if not cfg.root:
        raise DatasetNotFound("video-folder needs data.root=<folder of video files>")
    pyav()
    index = index_folder(Path(cfg.root).expanduser(), VIDEO_SUFFIXES, cfg.labels, "video")
    paths = index.train + (index.test or [])
    labels = index.train_labels + (index.test_labels or [])
    probes: list[VideoProbe | None] = []
    for p in paths:
        try:
            probes.append(probe(index.root / p))
        except UnreadableFile as err:
            if not cfg.skip_bad:
                raise
            log.warning("data.skip_bad: skipped %s", err)
            probes.append(None)
    keep = [p is not None for p in probes]
    n_train = sum(keep[:len(index.train)])
    if n_train < 2:
        raise DatasetNotFound(f"data.root {index.root} holds {n_train} readable training video(s); need at least 2")
    good = [p for p in probes if p is not None]
    fps = float(cfg.fps or min(p.rate for p in good))
    seconds = float(cfg.seconds or min(p.seconds for p in good))
    frames = int(math.floor(seconds * fps + 1e-6))
    if fps <= 0 or frames < 2:
        raise ValueError(f"video-folder needs data.fps > 0 and clips of at least 2 frames; got fps={fps}, "
                         f"seconds={seconds} ({frames} frames)")
    for p, info in zip(paths, probes):
        if info is not None and info.seconds + TIME_EPS < frames / fps:
            raise ValueError(f"video {index.root / p} lasts {info.seconds:.3f} s, shorter than a clip of {frames} "
                             f"frames at {fps:g} fps ({frames / fps:g} s): lower data.seconds or data.fps, or remove "
                             "the video")
    sizes = {(p.width, p.height) for p in good}
    size = cfg.image_size or (min(next(iter(sizes))) if len(sizes) == 1 and max(next(iter(sizes))) <= NATIVE_MAX
                              else LARGE_VIDEO_SIZE)
    grey = all(p.grey for p in good)
    kept_paths = [p for p, k in zip(paths, keep) if k]
    targets = read_video_targets(Path(cfg.targets).expanduser(), index.root, kept_paths) if cfg.targets else {}
    log.info("video-folder: %d clips of %d %s frames of %d x %d px at %g fps", len(kept_paths), frames,
             "grey" if grey else "RGB", size, size, fps)
    times = (np.arange(frames) / fps).tolist()
    everything = VideoFiles(index.root, kept_paths, [y for y, k in zip(labels, keep) if k],
                            {k: torch.from_numpy(v) for k, v in targets.items()}, cfg.skip_bad, times, size, grey)
    if index.test is not None:
        train, test = everything.take(range(n_train)), everything.take(range(n_train, len(everything)))
    else:
        kept, held = split_off(everything.labels, cfg.test_fraction, seed)
        train, test = everything.take(kept), everything.take(held)
    info = {"fps": fps, "root": str(index.root), "image_size": size}
    if targets:
        info["target"] = next(iter(targets))
    return RawSplits(train, test, num_classes=len(index.class_names), kind="clip", class_names=index.class_names,
                     info=info)
