"""The pretext tasks side by side with a peer method, in the comparison-table format: kNN,
linear, MLP and 10 % low-shot linear top-1 on Fashion-MNIST, and wall time, over seeds.

    python bench/pretext_table.py [--recipes rotnet-fashion-mnist,...] [--seeds 0,1]
        [--match steps|images|time] [--max-steps N] [--images N] [--seconds S]
        [--limit N] [--eval-limit N] [--out bench/results/pretext-table]

Every (recipe, seed) trains into its own run folder under --out (reused when it exists, so the
table can be filled one run per call) with the recipe's own settings, or a smaller budget via
--max-steps / --limit / --eval-limit. The budget can be matched three ways (--match, see
bench/compute_budget.py): equal optimiser steps (--max-steps; the default, which leaves the
images seen per step to each recipe: SimCLR 256, RotNet 128, exemplar 64), equal images seen
(--images N: N / data.batch_size steps each) or equal training wall time (--seconds S). The
table gives each row's steps and images seen. Writes --out/table.md and --out/table.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from compute_budget import BUDGETS, budget_overrides, budget_tag
from pretext_runs import mean_std, train_and_evaluate

RECIPES = ["rotnet-fashion-mnist", "relative-patch-fashion-mnist", "jigsaw-fashion-mnist", "exemplar-fashion-mnist",
           "simclr-fashion-mnist"]  # SimCLR: the peer, in the same script run
COLUMNS = [("kNN", "knn.top1"), ("linear", "linear.top1"), ("MLP", "mlp.top1"),
           ("10 % low-shot", "lowshot.10pct.linear.top1")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--match", choices=BUDGETS, default="steps", help="what every recipe gets the same of")
    parser.add_argument("--max-steps", type=int, default=None, help="trainer.max_steps (default: the recipe's epochs)")
    parser.add_argument("--images", type=int, default=None, help="--match images: images seen per run")
    parser.add_argument("--seconds", type=int, default=None, help="--match time: training seconds per run")
    parser.add_argument("--limit", type=int, default=None, help="data.limit: training images")
    parser.add_argument("--eval-limit", type=int, default=None, help="eval.limit: probe bank and test size")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pretext-table"))
    args = parser.parse_args()
    amount = {"steps": args.max_steps, "images": args.images, "time": args.seconds}[args.match]
    if amount is None and args.match != "steps":
        parser.error(f"--match {args.match} needs --{'images' if args.match == 'images' else 'seconds'}")

    rows = {}
    for recipe in args.recipes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            overrides = [f"seed={seed}", "trainer.enable_progress_bar=false", "eval.map_points=0"]
            overrides += [f"data.limit={args.limit}"] if args.limit else []
            overrides += [f"eval.limit={args.eval_limit}"] if args.eval_limit else []
            overrides += budget_overrides(recipe, args.match, amount, overrides) if amount else []
            tag = budget_tag(args.match, amount) if amount else ""
            run = train_and_evaluate(recipe, overrides, args.out / f"{recipe}{tag}-seed{seed}", ["mlp", "lowshot"],
                                     {"label_fractions": [0.01, 0.1]})
            rows.setdefault(recipe, []).append(run)
            print(recipe, seed, {key: round(run[key], 4) for _, key in COLUMNS}, f"train {run['train_seconds']:.0f} s")

    header = ("| recipe | " + " | ".join(name for name, _ in COLUMNS)
              + " | steps | images seen | train s | eval s | seeds |")
    lines = [header, "|---|" + "---|" * (len(COLUMNS) + 5)]
    for recipe, runs in rows.items():
        cells = [mean_std([r[key] for r in runs]) for _, key in COLUMNS]
        train_s = sum(r["train_seconds"] for r in runs) / len(runs)
        eval_s = sum(r["eval_seconds"] for r in runs) / len(runs)
        steps = sum(r["steps"] for r in runs) / len(runs)
        seen = sum(r["samples_seen"] for r in runs) / len(runs)
        lines.append(f"| {recipe} | " + " | ".join(cells)
                     + f" | {steps:.0f} | {seen:.0f} | {train_s:.0f} | {eval_s:.0f} | {len(runs)} |")
        if f"random_init.{COLUMNS[0][1]}" in runs[0]:  # the same architecture (patch tasks: patch-averaged), untrained
            cells = [mean_std([r[f"random_init.{key}"] for r in runs]) for _, key in COLUMNS]
            lines.append(f"| {recipe}, random-init encoder | " + " | ".join(cells)
                         + f" | - | - | - | - | {len(runs)} |")
    baseline = rows[next(iter(rows))][0]
    if "raw_pixels.knn.top1" in baseline:
        lines.append("| raw pixels | " + " | ".join(mean_std([baseline.get("raw_pixels." + key, float("nan"))])
                                                     for _, key in COLUMNS) + " | - | - | - | - | - |")
    budget = {"steps": f"equal steps ({args.max_steps})" if args.max_steps else "each recipe's own schedule",
              "images": f"equal images seen ({args.images})",
              "time": f"equal training wall time ({args.seconds} s)"}[args.match]
    settings = f"{budget}, data.limit {args.limit}, eval.limit {args.eval_limit}, seeds {args.seeds}"
    (args.out / "table.md").write_text(f"Fashion-MNIST, test top-1, mean ± std over seeds ({settings})\n\n"
                                       + "\n".join(lines) + "\n")
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
