"""Shared by the pretext benchmarks: train a recipe into a run folder and evaluate it, timed,
reusing a finished run folder instead of training again (so a long benchmark can be run one
piece at a time, each call within the machine's budget, and then summarised)."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Sequence

from selfsup.engine.configure import compose_config
from selfsup.engine.evaluate import evaluate_run
from selfsup.engine.train import train

TIMES = "bench_times.json"


def train_and_evaluate(recipe: str, overrides: Sequence[str], run_dir: Path, evaluations: Sequence[str] = (),
                       options: dict | None = None) -> dict:
    """eval.json of ``run_dir`` (training and evaluating it first where that is not done yet),
    plus ``train_seconds`` and ``eval_seconds`` (wall clock, measured when they ran) and the
    ``steps`` and ``samples_seen`` (images) of its training.json."""
    times_path = run_dir / TIMES
    if not times_path.exists():
        start = time.perf_counter()
        train(compose_config(recipe, [*overrides, "eval.after_train=false", f"run.dir={run_dir}"]))
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        evaluate_run(run_dir, (), evaluations, options)
        times = {"train_seconds": train_seconds, "eval_seconds": time.perf_counter() - start}
        times_path.write_text(json.dumps(times, indent=1))
    results = json.loads((run_dir / "eval.json").read_text())
    training = json.loads((run_dir / "training.json").read_text())
    return {**results, **json.loads(times_path.read_text()), "pretext_top1": last_logged(run_dir, "train/pretext_top1"),
            "steps": training["steps"], "samples_seen": training["samples_seen"]}


def last_logged(run_dir: Path, key: str) -> float | None:
    """The last value of ``key`` in the run's metrics.csv, or None."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return None
    with path.open() as f:
        values = [row[key] for row in csv.DictReader(f) if row.get(key)]
    return float(values[-1]) if values else None


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.4f} ± {std:.4f}"
