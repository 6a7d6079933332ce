"""UCI Adult (the 32,561-row train split), read from the ``fairness`` 0.1.8 wheel on PyPI.

The wheel holds ``fairness/data/raw/adult.csv`` (UCI ``adult.data`` with a header; ``?`` marks a
missing value). We read that file out of the wheel with ``zipfile``; the package itself is never
installed (156 MB and old dependencies). Where the wheel is looked for: ``data.root``,
``$SELFSUP_DATA``, then ``~/.cache/selfsup``, each holding the wheel or the extracted
``adult.csv``; with ``data.download=true`` pip downloads the wheel into the cache.

Encoding (a sample is a float row [D], kind ``tabular``; the encoder standardises each column
with the training split's mean and std):
- numbers: age, education-num, hours-per-week as they are; fnlwgt, capital-gain, capital-loss
  as log(1 + x) (heavy tails);
- categories: workclass, marital-status, occupation, relationship, race, native-country one-hot
  (``?`` is a category of its own); ``education`` is dropped (a relabelling of education-num);
- ``sex``: the sensitive attribute, one column, 1 = Male, 0 = Female, also ``targets["sex"]``;
- label: income > 50K (1) or not (0).
``info`` gives the column names, the column groups (one per original field: corruption views
replace whole fields) and the sensitive column.
"""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from selfsup.config.schema import DataConfig
from selfsup.data.base import ArrayDataset, RawSplits
from selfsup.data.images import held_out_splits
from selfsup.data.registry import DatasetNotFound, dataset

WHEEL_GLOB = "fairness-0.1.8*.whl"
MEMBER = "fairness/data/raw/adult.csv"
CSV_NAME = "adult.csv"
GET_IT = "pip download --no-deps fairness==0.1.8 -d ~/.cache/selfsup"
NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
LOG_SCALED = {"fnlwgt", "capital-gain", "capital-loss"}
CATEGORICAL = ["workclass", "marital-status", "occupation", "relationship", "race", "native-country"]
SENSITIVE, LABEL = "sex", "income-per-year"
CLASS_NAMES = ["<=50K", ">50K"]


def cache_dir() -> Path:
    return Path.home() / ".cache" / "selfsup"


def find_adult_csv(cfg: DataConfig) -> tuple[Path, str | None]:
    """(file, zip member or None): the wheel or an extracted adult.csv, from data.root,
    $SELFSUP_DATA, then the cache; with data.download a pip download into the cache."""
    folders = [Path(cfg.root).expanduser()] if cfg.root else []
    if os.environ.get("SELFSUP_DATA"):
        folders.append(Path(os.environ["SELFSUP_DATA"]).expanduser())
    folders.append(cache_dir())
    for folder in folders:
        wheels = sorted(folder.glob(WHEEL_GLOB)) if folder.is_dir() else []
        if wheels:
            return wheels[-1], MEMBER
        if (folder / CSV_NAME).is_file():
            return folder / CSV_NAME, None
    if cfg.download:
        cache_dir().mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "fairness==0.1.8", "-d",
                        str(cache_dir())], check=True)
        return sorted(cache_dir().glob(WHEEL_GLOB))[-1], MEMBER
    raise DatasetNotFound(
        f"adult not found (looked for {WHEEL_GLOB} or {CSV_NAME} in: {', '.join(map(str, folders))}). "
        f"Get the fairness 0.1.8 wheel, which holds {MEMBER} (do not install it): `{GET_IT}`, "
        "or point data.root at a folder holding that wheel, or allow that download with data.download=true."
    )


def read_rows(path: Path, member: str | None) -> list[dict[str, str]]:
    try:
        if member is None:
            text = path.read_text()
        else:
            with zipfile.ZipFile(path) as wheel:
                text = wheel.read(member).decode()
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable fairness wheel or adult.csv ({err}); download it again: `{GET_IT}`") from err
    rows = list(csv.DictReader(io.StringIO(text), skipinitialspace=True))
    missing = [c for c in NUMERIC + CATEGORICAL + [SENSITIVE, LABEL] if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: no rows, or columns {missing} missing; expected UCI Adult with a header")
    return rows


def encode(rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray, dict]:
    """float32 features [N, D], int64 income labels [N], and the column layout."""
    columns, names, groups = [], [], []
    for field in NUMERIC:
        values = np.array([float(r[field]) for r in rows], dtype=np.float64)
        columns.append(np.log1p(values) if field in LOG_SCALED else values)
        groups.append((len(names), len(names) + 1))
        names.append(field)
    for field in CATEGORICAL:
        raw = np.array([r[field] for r in rows])
        start = len(names)
        for category in sorted(set(raw)):
            columns.append((raw == category).astype(np.float64))
            names.append(f"{field}={category}")
        groups.append((start, len(names)))
    sex = np.array([r[SENSITIVE] for r in rows])
    unknown = sorted(set(sex) - {"Male", "Female"})
    if unknown:
        raise ValueError(f"adult: unexpected values of {SENSITIVE}: {unknown}")
    sensitive = len(names)
    columns.append((sex == "Male").astype(np.float64))
    groups.append((sensitive, sensitive + 1))
    names.append("sex=Male")
    labels = np.array([r[LABEL].rstrip(".") == ">50K" for r in rows], dtype=np.int64)
    info = {"feature_names": names, "feature_groups": [list(g) for g in groups], "sensitive": SENSITIVE,
            "sensitive_column": sensitive}
    return np.stack(columns, axis=1).astype(np.float32), labels, info


@dataset("UCI Adult (train split, 32,561 people) from the fairness 0.1.8 wheel: income > 50K, "
         "sensitive attribute sex")
def adult(cfg: DataConfig, seed: int) -> RawSplits:
    features, labels, info = encode(read_rows(*find_adult_csv(cfg)))
    x = torch.from_numpy(features)
    dataset = ArrayDataset(x, torch.from_numpy(labels), {SENSITIVE: x[:, info["sensitive_column"]].clone()})
    return held_out_splits(dataset, cfg, seed, num_classes=2, kind="tabular", class_names=CLASS_NAMES, info=info)
