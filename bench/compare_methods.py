"""Compare SimCLR and issue 3's methods (MoCo v2, SupCon, SupCon-MoCo, BYOL, SimSiam, Barlow Twins,
VICReg) under one budget: the same encoder, data and number of optimiser steps (or, with
``--match images`` / ``--match time``, the same number of images seen or the same training wall
time: bench/compute_budget.py), several seeds.

    python bench/compare_methods.py [--out bench/results/compare-methods] [--steps 600]
        [--match steps|images|time] [--images N] [--seconds S]
        [--seeds 0 1] [--methods simclr moco ...] [--threads 2] [key=value ...]

Every (method, seed) is ``selfsup train <method>-fashion-mnist seed=S trainer.max_steps=STEPS
trainer.max_epochs=-1 run.dir=OUT/<method>-seed<S> [key=value ...]`` (``--match images``: the steps
that give each recipe N images at its batch size, run folder <method>-imagesN-seed<S>; ``--match
time``: ``trainer.max_time``, <method>-timeSs-seed<S>) followed by its evaluation,
in a process of its own, which records its wall time and peak memory in RUN/bench.json. The
script can be stopped and started again: a run with an eval.json is finished and skipped, a run
with a checkpoint but no eval.json is resumed. It writes OUT/table.md (and OUT/table.json): kNN
and linear top-1 on the test split (mean ± sample sd over seeds), the random-init encoder's, the
online probe's top-1 on the validation split (the number to choose hyper-parameters by: the test
split is for reporting only), the collapse diagnostics of the last logged training batch, the
training wall time and the peak resident memory.

The recipes share encoder, data, batch size and augmentation; each keeps its paper's optimiser
and head shapes (sized for the CPU, see the recipe files). ``key=value`` arguments go to every
run (e.g. ``data.name=digits model.width=8`` for a quick check of the script).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from compute_budget import BUDGETS, budget_overrides, budget_tag

METHODS = ["simclr", "moco", "supcon", "supcon-moco", "byol", "simsiam", "barlow-twins", "vicreg"]


def run_one(recipe: str, run_dir: Path, overrides: list[str]) -> None:
    """Child process: train (or resume) and evaluate one run, then append its costs to bench.json."""
    import torch

    from selfsup.engine.configure import compose_config
    from selfsup.engine.evaluate import evaluate_run
    from selfsup.engine.train import resume, train

    start = time.perf_counter()
    resumed = (Path(run_dir) / "checkpoints" / "last.ckpt").exists()
    if resumed:
        resume(run_dir)
    else:
        train(compose_config(recipe, [*overrides, f"run.dir={run_dir}"]))
    trained = time.perf_counter()
    evaluate_run(run_dir)
    attempt = {
        "train_s": trained - start, "eval_s": time.perf_counter() - trained, "resumed": resumed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }
    log = run_dir / "bench.json"
    attempts = json.loads(log.read_text()) if log.exists() else []
    log.write_text(json.dumps([*attempts, attempt], indent=2) + "\n")


def last_value(rows: list[dict], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key)]
    return values[-1] if values else math.nan


def read_run(run_dir: Path) -> dict:
    from omegaconf import OmegaConf

    results = json.loads((run_dir / "eval.json").read_text())
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    attempts = json.loads((run_dir / "bench.json").read_text()) if (run_dir / "bench.json").exists() else []
    cfg = OmegaConf.load(run_dir / "config.yaml")
    training = json.loads((run_dir / "training.json").read_text()) if (run_dir / "training.json").exists() else {}
    return {
        "knn": results["knn.top1"], "linear": results["linear.top1"],
        "random_knn": results.get("random_init.knn.top1", math.nan),
        "random_linear": results.get("random_init.linear.top1", math.nan),
        "val_probe": last_value(rows, "val/probe_top1"),
        "std": last_value(rows, "train/embedding_std"), "rank": last_value(rows, "train/effective_rank"),
        "dim": int(cfg.method.get("proj_dim", 0)) or math.nan,
        "train_s": sum(a["train_s"] for a in attempts) if attempts else math.nan,
        "peak_mb": max((a["peak_rss_mb"] for a in attempts), default=math.nan),
        "resumed": any(a["resumed"] for a in attempts),
        "steps": training.get("steps", math.nan), "images": training.get("samples_seen", math.nan),
    }


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values if not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(runs: dict[str, list[dict]], budget: str, extra: list[str]) -> str:
    lines = [
        f"Budget: {budget} per run; seeds per method in the last column; extra settings: "
        f"{' '.join(extra) or 'none'}. Accuracies in % on the test split (mean ± sample sd over seeds); "
        "val probe: the online linear probe on the validation split; std·√d: per-dimension std of the "
        "L2-normalised embeddings times √d (≈1 spread out, 0 collapsed) and effective rank, both on the last "
        "logged training batch; peak memory: the process's resident set.",
        "",
        "| method | kNN top-1 | linear top-1 | random-init kNN / linear | val probe top-1 | std·√d | eff. rank (d) "
        "| steps | images seen | train wall s | peak MB | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, rs in runs.items():
        if not rs:
            lines.append(f"| {method} | not run yet | | | | | | | | | | 0 |")
            continue
        below = statistics.mean(r["knn"] for r in rs) <= statistics.mean(r["random_knn"] for r in rs)
        flag = " ⚠ not above random init" if below else ""
        dim = rs[0]["dim"]
        std = mean_sd([r["std"] * math.sqrt(dim) for r in rs], digits=2)
        lines.append(
            f"| {method}{flag} | {mean_sd([r['knn'] for r in rs], 100)} | {mean_sd([r['linear'] for r in rs], 100)} "
            f"| {mean_sd([r['random_knn'] for r in rs], 100)} / {mean_sd([r['random_linear'] for r in rs], 100)} "
            f"| {mean_sd([r['val_probe'] for r in rs], 100)} | {std} | {mean_sd([r['rank'] for r in rs])} ({dim}) "
            f"| {mean_sd([r['steps'] for r in rs], digits=0)} | {mean_sd([r['images'] for r in rs], digits=0)} "
            f"| {mean_sd([r['train_s'] for r in rs], digits=0)} | {mean_sd([r['peak_mb'] for r in rs], digits=0)} "
            f"| {len(rs)}{' (resumed)' if any(r['resumed'] for r in rs) else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/compare-methods"))
    # 600 steps: under 10 minutes a run (train + eval) on this 2-core CPU, where a step of the
    # recipes takes about 0.7-1.1 s (batch 256, 28x28, convnet-small) on one loaded core
    parser.add_argument("--steps", type=int, default=600, help="optimiser steps per run (the same for every method)")
    parser.add_argument("--match", choices=BUDGETS, default="steps", help="what every method gets the same of")
    parser.add_argument("--images", type=int, default=None, help="--match images: images seen per run")
    parser.add_argument("--seconds", type=int, default=None, help="--match time: training seconds per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (OMP_NUM_THREADS)")
    parser.add_argument("--child", nargs=2, metavar=("RECIPE", "RUN_DIR"), help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args()
    if args.child:
        run_one(args.child[0], Path(args.child[1]), overrides)
        return 0
    bad = [o for o in overrides if "=" not in o]
    if bad:
        parser.error(f"unrecognised arguments {bad}: settings are key=value")
    amount = {"steps": args.steps, "images": args.images, "time": args.seconds}[args.match]
    if amount is None:
        parser.error(f"--match {args.match} needs --{'images' if args.match == 'images' else 'seconds'}")
    budget = {"steps": f"{args.steps} optimiser steps", "images": f"{args.images} images seen",
              "time": f"{args.seconds} s of training wall time"}[args.match]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    runs: dict[str, list[dict]] = {}
    for method in args.methods:
        runs[method] = []
        for seed in args.seeds:
            run_dir = args.out / f"{method}{budget_tag(args.match, amount)}-seed{seed}"
            if not (run_dir / "eval.json").exists():
                print(f"== {method} seed {seed} -> {run_dir}", flush=True)
                recipe = f"{method}-fashion-mnist"
                common = [*overrides, *budget_overrides(recipe, args.match, amount, overrides)]
                child = [sys.executable, __file__, "--child", recipe, str(run_dir), f"seed={seed}", *common]
                if subprocess.run(child, env=env).returncode != 0:
                    print(f"!! {method} seed {seed} failed; it is left out of the table (run again to retry)", flush=True)
                    continue
            runs[method].append(read_run(run_dir))
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(runs, budget, overrides)
    (args.out / "table.md").write_text(text)
    (args.out / "table.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
