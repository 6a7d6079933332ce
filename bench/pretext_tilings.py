"""The patch tasks (relative patch, jigsaw) evaluated on both whole-image tilings, from the same
trained runs: ``method.eval_tiling=central`` (a gapless 3x3 tiling of the central crop, the way
Kolesnikov et al. 2019 and Doersch et al. 2015 apply a patch network to a whole image; our
default) beside ``method.eval_tiling=training`` (the training grid with its gaps).

    python bench/pretext_tilings.py [--runs bench/results/pretext-v2] [--eval-limit 5000]

Every patch-task run folder directly under --runs (evaluated there with the central tiling, as
bench/pretext_table.py leaves it) is copied to --runs/tiling-training/ and evaluated again with
the training tiling (resumable: a finished copy carries ``eval.json.done``). Writes
--runs/tiling-training/table.md: kNN and linear top-1 of each run and of its random-init
encoder under both tilings, mean ± std over the seeds of each budget.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import yaml

from pretext_runs import mean_std
from selfsup.engine.evaluate import evaluate_run

PATCH_METHODS = ("relative-patch", "jigsaw")
KEYS = [("kNN", "knn.top1"), ("linear", "linear.top1"), ("random-init kNN", "random_init.knn.top1"),
        ("random-init linear", "random_init.linear.top1")]


def patch_runs(root: Path) -> list[Path]:
    """The real (not symlinked) run folders of the patch tasks directly under ``root``."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and (p / "eval.json").exists()
                  and yaml.safe_load((p / "config.yaml").read_text())["method"]["name"] in PATCH_METHODS)


def evaluate_on_training_grid(run: Path, out: Path, eval_limit: int) -> Path:
    copy = out / run.name
    if not (copy / "eval.json.done").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        evaluate_run(copy, ["method.eval_tiling=training", f"eval.limit={eval_limit}"])
        (copy / "eval.json.done").touch()
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("bench/results/pretext-v2"))
    parser.add_argument("--eval-limit", type=int, default=5000)
    args = parser.parse_args()
    out = args.runs / "tiling-training"
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict[str, list[dict]]] = {}
    for run in patch_runs(args.runs):
        copy = evaluate_on_training_grid(run, out, args.eval_limit)
        group = re.sub(r"-seed\d+$", "", run.name)
        for tiling, folder in (("central", run), ("training", copy)):
            results = json.loads((folder / "eval.json").read_text())
            groups.setdefault(group, {}).setdefault(tiling, []).append(results)
    lines = ["| run | tiling | " + " | ".join(name for name, _ in KEYS) + " | seeds |",
             "|---|---|" + "---|" * len(KEYS) + "---|"]
    for group, tilings in groups.items():
        for tiling in ("central", "training"):
            runs = tilings[tiling]
            cells = [mean_std([r[key] for r in runs if key in r]) for _, key in KEYS]
            lines.append(f"| {group} | {tiling} | " + " | ".join(cells) + f" | {len(runs)} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
