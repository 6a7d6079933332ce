"""The training length a user's own folder gets: Fashion-MNIST slices written as PNG class
folders and read through ``image-folder``, trained with nothing but ``data.name`` and
``data.root`` (issue 10, part 5), plus sklearn's digits.

    python bench/own_data_budget.py --cases 2000:500,1000,2000 10000:default 60000:default digits:500,1000,2000

Each case is ``SIZE:RULES``: SIZE training images (a seeded sample of the 60,000, in
``train/<class>/``; the 10,000 test images in ``test/``, written once and linked into every
slice) or ``digits``; RULES the ``trainer.min_train_steps`` values to try (``default``: the
command as a user types it, selfsup's own rule, the recipe's wall-time budget included; a
candidate value runs without the budget, so it trains the steps the rule gives). The rule is chosen on the run's validation split (its
``val_fraction`` of the training images, the online kNN monitor's last ``val/knn_top1``), never
on the test split. The table: steps, epochs, wall time, validation kNN, test kNN / linear of
the trained encoder, of its random initialisation and of raw pixels (selfsup's evaluation of
the same run).

Runs go two side by side (``--jobs``), each on ``--threads`` torch threads; run folders and
logs in bench/results/own_data/, the table in ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from selfsup.data.idx import read_idx

RESULTS = Path(__file__).parent / "results" / "own_data"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_pngs(images: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """``folder/<label>/<i>.png`` for every image, unless the folder is complete already."""
    done = folder / ".complete"
    if done.exists():
        return
    for i, (image, label) in enumerate(zip(images, labels)):
        target = folder / f"{label:d}" / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target)
    done.write_text(str(len(images)))


def fashion_folder(size: int) -> Path:
    """A root with ``train/`` (``size`` seeded training images) and ``test/`` (all 10,000)."""
    root = RESULTS / f"fashion-mnist-{size}"
    test = RESULTS / "fashion-mnist-test"
    write_pngs(read_idx(FASHION / "t10k-images-idx3-ubyte.gz"), read_idx(FASHION / "t10k-labels-idx1-ubyte.gz"),
               test)
    images, labels = read_idx(FASHION / "train-images-idx3-ubyte.gz"), read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    rows = np.sort(np.random.default_rng(0).permutation(len(images))[:size])
    write_pngs(images[rows], labels[rows], root / "train")
    if not (root / "test").exists():
        (root / "test").symlink_to(test.resolve(), target_is_directory=True)
    return root


def last_value(metrics: Path, column: str) -> float | None:
    value = None
    with metrics.open() as f:
        for row in csv.DictReader(f):
            if row.get(column):
                value = float(row[column])
    return value


def train(name: str, data: list[str], rule: str, threads: int) -> dict:
    run_dir = RESULTS / "runs" / f"{name}-rule-{rule}"
    args = [sys.executable, "-m", "selfsup", "train", *data, f"run.dir={run_dir}",
            "trainer.enable_progress_bar=false"]
    if rule != "default":  # a candidate rule: its steps, not cut short by the wall-time budget
        args += [f"trainer.min_train_steps={rule}", "trainer.max_time=null"]
    if not (run_dir / "eval.json").exists():
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        log = (RESULTS / "runs" / f"{name}-rule-{rule}.log").open("w")
        subprocess.run(args, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        (run_dir / "bench_wall_s.txt").write_text(f"{time.perf_counter() - start:.1f}")
    metrics = json.loads((run_dir / "eval.json").read_text())
    training = json.loads((run_dir / "training.json").read_text())
    return {"name": name, "rule": rule, "eval": metrics, "training": training,
            "val_knn": last_value(run_dir / "metrics.csv", "val/knn_top1"),
            "wall_s": float((run_dir / "bench_wall_s.txt").read_text())}


def cell(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def table(results: list[dict]) -> list[str]:
    lines = ["| data | min_train_steps | steps | epochs | train+eval wall (min) | val kNN | kNN | linear | "
             "random-init kNN | random-init linear | raw-pixel kNN | raw-pixel linear |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        e, t = r["eval"], r["training"]
        lines.append("| " + " | ".join([
            r["name"], r["rule"], cell(t.get("steps")), cell(t.get("epochs")), f"{r['wall_s'] / 60:.1f}",
            cell(r["val_knn"]), cell(e.get("knn.top1")), cell(e.get("linear.top1")),
            cell(e.get("random_init.knn.top1")), cell(e.get("random_init.linear.top1")),
            cell(e.get("raw_pixels.knn.top1")), cell(e.get("raw_pixels.linear.top1")),
        ]) + " |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["2000:500,1000,2000", "10000:default", "60000:default",
                                                  "digits:500,1000,2000"])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "reports" / "own-data" / "budget.md")
    args = p.parse_args()
    (RESULTS / "runs").mkdir(parents=True, exist_ok=True)
    jobs = []
    for case in args.cases:
        size, rules = case.split(":")
        if size == "digits":
            data = ["data.name=digits"]
        else:
            data = ["data.name=image-folder", f"data.root={fashion_folder(int(size))}"]
        name = size if size == "digits" else f"fashion-mnist-{size}"
        jobs += [(name, data, rule) for rule in rules.split(",")]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: train(*job, args.threads), jobs))
    lines = [f"`python bench/own_data_budget.py --cases {' '.join(args.cases)} --jobs {args.jobs} "
             f"--threads {args.threads}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; runs {args.jobs} "
             f"side by side, {args.threads} torch thread(s) each, on a 2-core CPU)", "", *table(results)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
