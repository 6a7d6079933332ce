"""``signals``: your own signals (periodic ones for SimPer), with your own continuous targets.

``data.root`` is one file of N signals of one length T:
- ``.npy``: a numeric array ``[N, T]`` (one channel) or ``[N, C, T]`` (C channels), read with
  ``allow_pickle=False``;
- ``.csv``: one signal per row (one channel), comma-separated numbers, every row of the same
  length. A first row that is not all numbers is a header (names of the time steps or anything
  else) and is skipped; no column of names: every other field must be a number.

``data.fps`` is the sampling rate in Hz (frequencies, e.g. SimPer's band, are then in Hz;
unset, they are in cycles per step). ``data.targets`` is a CSV with a header row naming each
target (e.g. ``freq``, ``heart_rate``) and one row of numbers per signal, in the order of
``data.root``; every target rides along in ``targets``, and the first column is
``info["target"]``, the one the regression probe predicts. Values are used as given (no
resampling, no per-signal standardisation: the encoder normalises by the training set's
channel statistics); a NaN or infinite value is an error naming its row. The signals are
unlabelled (-1); a seeded ``data.test_fraction`` is held out for testing. The layout is that
of the built-in signal datasets: float32 ``[N, T, C]``, kind "signal".
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import UNLABELLED, ArrayDataset, RawSplits
from selfsup.data.registry import DatasetNotFound, dataset
from selfsup.data.splits import split_off


def read_csv_rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{what} {path} cannot be read as CSV ({err})") from err


def numbers(row: list[str], path: Path, number: int, what: str) -> list[float]:
    """The fields of one CSV row as finite floats, else an error naming the row and column."""
    out = []
    for column, cell in enumerate(row, start=1):
        try:
            value = float(cell)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"{what} {path} row {number}, column {column}: {cell!r} is not a finite number")
        out.append(value)
    return out


def is_numeric(row: list[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def read_signals(path: Path) -> np.ndarray:
    """float32 [N, T, C] from a .npy [N, T] / [N, C, T] or a .csv of one signal per row."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"data.root {path} is not a readable .npy array ({err})") from err
        if array.ndim not in (2, 3) or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"data.root {path} holds a {array.dtype} array of shape {list(array.shape)}; "
                             "signals must be numbers of shape [N, T] or [N, C, T]")
        array = array.astype(np.float32)
        array = array[:, :, None] if array.ndim == 2 else array.transpose(0, 2, 1)
        bad = np.flatnonzero(~np.isfinite(array).all(axis=(1, 2)))
        if len(bad):
            raise ValueError(f"data.root {path}: signal {int(bad[0])} (0-based) holds NaN or infinite values "
                             f"({len(bad)} such signal(s)); fix or drop them")
        return np.ascontiguousarray(array)
    if path.suffix.lower() == ".csv":
        rows = read_csv_rows(path, "data.root")
        if rows and not is_numeric(rows[0][1]):
            rows = rows[1:]  # a header row
        signals = []
        for number, row in rows:
            values = numbers(row, path, number, "data.root")
            if signals and len(values) != len(signals[0]):
                raise ValueError(f"data.root {path} row {number}: {len(values)} values, but the first signal has "
                                 f"{len(signals[0])}; every signal must have the same length")
            signals.append(values)
        return np.asarray(signals, dtype=np.float32).reshape(len(signals), -1 if signals else 0, 1)
    raise ValueError(f"data.root {path}: signals must be a .npy or .csv file")


def read_targets(path: Path, count: int) -> dict[str, np.ndarray]:
    """Target name -> float32 [count] from a CSV with a header row and one row per signal."""
    rows = read_csv_rows(path, "data.targets")
    if not rows or is_numeric(rows[0][1]):
        raise ValueError(f"data.targets {path} must start with a header row naming each target (e.g. freq,heart_rate)")
    header = rows[0][1]
    names = [name.strip() for name in header]
    if "" in names or len(set(names)) != len(names):
        raise ValueError(f"data.targets {path}: header {header} must name every column once")
    if len(rows) - 1 != count:
        raise ValueError(f"data.targets {path} has {len(rows) - 1} rows of values for {count} signals in data.root; "
                         "give one row per signal, in the same order")
    values = []
    for number, row in rows[1:]:
        if len(row) != len(names):
            raise ValueError(f"data.targets {path} row {number}: {len(row)} values for {len(names)} columns")
        values.append(numbers(row, path, number, "data.targets"))
    table = np.asarray(values, dtype=np.float32).reshape(count, len(names))
    return {name: table[:, k] for k, name in enumerate(names)}


@dataset("your signals (data.root=<.npy [N,T] or [N,C,T] | .csv one per row>, data.fps=<Hz>, "
         "data.targets=<csv, a column per target>); unlabelled, first target for the regression probe")
def signals(cfg: DataConfig, seed: int) -> RawSplits:
    if not cfg.root:
        raise DatasetNotFound("signals needs data.root=<file.npy | file.csv> (one signal per row)")
    path = Path(cfg.root).expanduser()
    if not path.is_file():
        raise DatasetNotFound(f"data.root {path} is not a file: give a .npy array [N, T] or [N, C, T] or a .csv "
                              "of one signal per row")
    if cfg.fps is not None and not cfg.fps > 0:
        raise ValueError(f"data.fps must be a positive sampling rate in Hz, got {cfg.fps}")
    x = read_signals(path)
    if len(x) < 2 or x.shape[1] < 2:
        raise ValueError(f"data.root {path} holds {len(x)} signal(s) of {x.shape[1]} step(s); need at least 2 of 2")
    targets = read_targets(Path(cfg.targets).expanduser(), len(x)) if cfg.targets else {}
    everything = ArrayDataset(torch.from_numpy(x), torch.full((len(x),), UNLABELLED, dtype=torch.long),
                              {k: torch.from_numpy(v) for k, v in targets.items()})
    keep, held = split_off(everything.labels, cfg.test_fraction, seed)
    info = {"fps": float(cfg.fps)} if cfg.fps else {}
    if targets:
        info["target"] = next(iter(targets))
    return RawSplits(train=everything.take(keep), test=everything.take(held), num_classes=0, kind="signal",
                     info=info)
