"""Compare every image method under one budget: the contrastive family (SimCLR, MoCo v2, SupCon,
SupCon-MoCo, BYOL, SimSiam, Barlow Twins, VICReg), the pretext tasks (RotNet, relative patch, jigsaw,
exemplar) and issue 12's (DINO, MoCo v3, SwAV, NNCLR, MAE; DINO and MoCo v3 also on vit-tiny), the
same data and number of optimiser steps (or, with ``--match images`` / ``--match time``, the same
number of images seen or the same training wall time: bench/compute_budget.py), several seeds.

    python bench/compare_methods.py [--out bench/results/compare-methods] [--steps 600]
        [--match steps|images|time] [--images N] [--seconds S]
        [--seeds 0 1] [--methods simclr moco ...] [--threads 2] [key=value ...]

Every (method, seed) is ``selfsup train <recipe> seed=S trainer.max_steps=STEPS
trainer.max_epochs=-1 run.dir=OUT/<method>-seed<S> [the row's settings] [key=value ...]`` (``--match
images``: the steps that give each recipe N images at its batch size, run folder
<method>-imagesN-seed<S>; ``--match time``: ``trainer.max_time``, <method>-timeSs-seed<S>) followed by
its evaluation (the standard kNN and linear probes plus the 10 % low-shot linear probe, each for the
trained encoder, its random init and raw pixels), in a process of its own, which records its wall
time and peak memory in RUN/bench.json. The script can be stopped and started again: a run with an
eval.json is finished and skipped, a run with a checkpoint but no eval.json is resumed; two copies
given different ``--methods`` can fill one ``--out`` side by side. It writes OUT/table.md (and
OUT/table.json): kNN, linear and 10 % low-shot top-1 on the test split (mean ± sample sd over seeds)
beside the random-init encoder's and a raw-pixels row, the online probe's top-1 on the validation
split (the number to choose hyper-parameters by: the test split is for reporting only), the collapse
diagnostics of the last logged training batch, the steps and images seen, the training wall time
and the peak resident memory.

Each recipe keeps its paper's optimiser, views and head shapes (sized for the CPU, see the recipe
files); the ConvNet rows share encoder (convnet-small, width 32), data and augmentation strength.
``key=value`` arguments go to every run (e.g. ``data.name=digits model.width=8`` for a quick check
of the script).
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

VIT = ["model.encoder=vit-tiny", "model.patch_size=4"]  # 49 patches of 4x4 at 28 px (the MAE recipe's)
# row name -> (recipe, the row's own settings)
METHODS = {
    **{name: (f"{name}-fashion-mnist", []) for name in [
        "simclr", "moco", "supcon", "supcon-moco", "byol", "simsiam", "barlow-twins", "vicreg",
        "rotnet", "relative-patch", "jigsaw", "exemplar", "dino", "mocov3", "swav", "nnclr", "mae"]},
    "dino-vit": ("dino-fashion-mnist", VIT),  # the recipe's AdamW is the paper's ViT optimiser
    # the paper's ViT optimiser: AdamW, lr 1.5e-4 x batch/256, weight decay 0.1 (the recipe's LARS is its ResNet one)
    "mocov3-vit": ("mocov3-fashion-mnist", [*VIT, "optim.name=adamw", "optim.lr=1.5e-4", "optim.weight_decay=0.1"]),
}
LOWSHOT_FRACTION = 0.1


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
    evaluate_run(run_dir, evaluations=["lowshot"], options={"label_fractions": [LOWSHOT_FRACTION]})
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
    lowshot = f"lowshot.{LOWSHOT_FRACTION * 100:g}pct.linear.top1"
    return {
        **{f"{prefix}{name}": results.get(f"{subject}{key}", math.nan)
           for prefix, subject in (("", ""), ("random_", "random_init."), ("pixels_", "raw_pixels."))
           for name, key in (("knn", "knn.top1"), ("linear", "linear.top1"), ("lowshot", lowshot))},
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
        "logged training batch; peak memory: the process's resident set; –: not logged (no validation "
        "pass within the budget, or no projection dimension: DINO, MAE and the pretext tasks).",
        "",
        "| method | kNN top-1 | linear top-1 | 10 % low-shot | random-init kNN / linear / low-shot | val probe top-1 "
        "| std·√d | eff. rank (d) | steps | images seen | train wall s | peak MB | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, rs in runs.items():
        if not rs:
            lines.append(f"| {method} | not run yet | | | | | | | | | | | 0 |")
            continue
        below = [probe for probe in ("knn", "linear")
                 if statistics.mean(r[probe] for r in rs) <= statistics.mean(r[f"random_{probe}"] for r in rs)]
        flag = f" ⚠ {' and '.join(below)} not above random init" if below else ""
        dim = rs[0]["dim"]
        std = mean_sd([r["std"] * math.sqrt(dim) for r in rs], digits=2)
        lines.append(
            f"| {method}{flag} | {mean_sd([r['knn'] for r in rs], 100)} | {mean_sd([r['linear'] for r in rs], 100)} "
            f"| {mean_sd([r['lowshot'] for r in rs], 100)} | {mean_sd([r['random_knn'] for r in rs], 100)} / "
            f"{mean_sd([r['random_linear'] for r in rs], 100)} / {mean_sd([r['random_lowshot'] for r in rs], 100)} "
            f"| {mean_sd([r['val_probe'] for r in rs], 100)} | {std} | {mean_sd([r['rank'] for r in rs])} ({'–' if math.isnan(dim) else dim}) "
            f"| {mean_sd([r['steps'] for r in rs], digits=0)} | {mean_sd([r['images'] for r in rs], digits=0)} "
            f"| {mean_sd([r['train_s'] for r in rs], digits=0)} | {mean_sd([r['peak_mb'] for r in rs], digits=0)} "
            f"| {len(rs)}{' (resumed)' if any(r['resumed'] for r in rs) else ''} |"
        )
    pixels = next((rs[0] for rs in runs.values() if rs), None)  # the same inputs, whichever run evaluated them
    if pixels is not None:
        lines.append(f"| raw pixels | {mean_sd([pixels['pixels_knn']], 100)} | {mean_sd([pixels['pixels_linear']], 100)} "
                     f"| {mean_sd([pixels['pixels_lowshot']], 100)} | | | | | | | | | |")
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
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
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
                recipe, own = METHODS[method]
                common = [*own, *overrides, *budget_overrides(recipe, args.match, amount, [*own, *overrides])]
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
