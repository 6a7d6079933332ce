"""``selfsup embed RUN_DIR``: the trained encoder's features of a dataset, as a table a user can
take elsewhere: ``.npy`` (features) + ``<name>.rows.csv`` (one row per feature row), ``.csv``
or ``.parquet`` (one row per sample: its path for folder datasets or its index, label, split,
then the features ``f0 .. f<d-1>``). By default the run's own data settings and seed, so the
train / test split is the run's."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from selfsup.data import IndexedDataset
from selfsup.engine.run import Run
from selfsup.eval.features import extract_features
from selfsup.models import load_encoder

SPLITS = ("train", "test", "all")
FORMATS = (".npy", ".csv", ".parquet")


def sample_ids(dataset: IndexedDataset) -> tuple[str, list]:
    """("path", relative paths) for file-backed datasets, else ("index", positions in the split)."""
    paths = getattr(dataset, "paths", None)
    if paths is not None and len(paths) == len(dataset):
        return "path", [str(p) for p in paths]
    return "index", list(range(len(dataset)))


def embed_run(run: Run | str | Path, data_overrides: Sequence[str] = (), split: str = "all",
              batch_size: Optional[int] = None) -> tuple[np.ndarray, dict[str, list]]:
    """(features [N, d], columns {"path"|"index", "label", "split"}) of ``split`` of the run's data
    (``data_overrides`` such as data.name=... change which data)."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    run = Run.open(run, list(data_overrides))
    encoder = load_encoder(run.dir)
    splits = run.splits()
    channels = encoder.mean.numel()  # one normalisation statistic per input channel (column for tables)
    if splits.in_channels != channels:
        raise ValueError(f"{run.cfg.data.name} has {splits.in_channels}-channel inputs but the encoder of {run.dir} "
                         f"takes {channels}: embed data of the kind it was trained on (--data)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = [("train", splits.train), ("test", splits.test)] if split == "all" else [(split, getattr(splits, split))]
    features, columns = [], {"label": [], "split": []}
    for name, dataset in parts:
        x, y = extract_features(encoder, dataset, batch_size or int(run.cfg.eval.batch_size), device)
        id_name, ids = sample_ids(dataset)
        columns.setdefault(id_name, []).extend(ids)
        columns["label"].extend(int(v) for v in y)
        columns["split"].extend([name] * len(y))
        features.append(x.numpy())
    id_column = "path" if "path" in columns else "index"
    return np.concatenate(features), {id_column: columns[id_column], "label": columns["label"], "split": columns["split"]}


def write_embeddings(out: Path, features: np.ndarray, columns: dict[str, list]) -> list[Path]:
    """Write by the file's suffix; returns the files written."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"--out {out}: the suffix says the format; use one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [f"f{i}" for i in range(features.shape[1])]
    if suffix == ".npy":
        np.save(out, features)
        rows = out.with_suffix(".rows.csv")
        write_csv(rows, columns, None, [])
        return [out, rows]
    if suffix == ".csv":
        write_csv(out, columns, features, names)
        return [out]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("--out *.parquet needs pyarrow: `pip install 'selfsup[parquet]'` (or write .csv / .npy)") from None
    table = {**columns, **{n: features[:, i] for i, n in enumerate(names)}}
    pq.write_table(pa.table(table), out)
    return [out]


def write_csv(path: Path, columns: dict[str, list], features: Optional[np.ndarray], names: list[str]) -> None:
    keys = list(columns)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys + names)
        for i in range(len(columns[keys[0]])):
            row = [columns[k][i] for k in keys]
            writer.writerow(row + ([] if features is None else [f"{v:.7g}" for v in features[i]]))
