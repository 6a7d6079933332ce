"""The ContextSSL experiment on RotColor-MNIST: does the context choose the symmetry?

Two arms with the same encoder (convnet-small, width 32), data (2,000 training digits, fresh
rotations and hues each step), batch size, optimiser and number of steps:

- ``contextssl``: the recipe contextssl-rotcolor-mnist as it is (env_ratio rot .5 / color .5);
- ``simclr``: ``simclr-pairs`` on the same pairs (positives = two renders of a digit, so it is
  pushed to invariance to rotation and colour), projection head 256-64, temperature 0.5.

Both are scored by the run's evaluation (selfsup.eval.contextual) on 500 training objects (the
probes' training pairs and the context pairs) and 500 held-out objects: R^2 of the relative
rotation and colour change from pairs of representations, MRR / Hit@k of retrieving the view an
action leads to among an object's 20 views, and linear top-1 of the digit. ContextSSL is read at
context lengths 0, 2, 6, 14, 30 in each environment (rot, color, none); SimCLR, which has no
context, on its encoder features; the untrained encoder (the ContextSSL runs' own initialisation)
on its features shows what the architecture encodes before training. Mean +- std over the seeds;
chance levels beside them (R^2 0;
MRR H_20/20 = 0.180, Hit@1 0.05, Hit@5 0.25; top-1 0.1).

The paper's finding (3DIEBench, Fig. 3 and Table 1) to check at small scale: under rotation
context rotation R^2 stays high while colour R^2 falls as the context grows, the mirror under
colour context; MRR under rotation context rises with the context length; SimCLR is low on
both factors.

    python bench/contextssl_experiment.py --threads 1      # 2 seeds x 2 arms (2-core CPU: about 12 minutes a run)
    python bench/contextssl_experiment.py --tiny --seeds 0 # a smoke test of the script (a minute or two)

Measured on the shared 2-core machine under a load of about 6: a ContextSSL step (batch 256)
took 1.3 s with one torch thread and 7 s with two (the threads wait on each other), so 420 steps
(60 epochs of 2,000 objects) take about 9 minutes with ``--threads 1``, plus 1-2 for evaluation.

Writes ``results.md`` (tables), ``results.json`` and ``contexts.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from selfsup.config.loading import build_config, parse_overrides, recipe_values  # noqa: E402
from selfsup.engine.configure import resolve_config  # noqa: E402
from selfsup.engine.evaluate import evaluate_run  # noqa: E402
from selfsup.engine.train import train  # noqa: E402
from selfsup.eval.retrieval import chance_mrr_and_hits  # noqa: E402

RECIPE = "contextssl-rotcolor-mnist"
SIMCLR = {"name": "simclr-pairs", "temperature": 0.5, "proj_hidden_dim": 256, "proj_dim": 64}
TINY = ["data.limit=64", "data.batch_size=32", "trainer.max_steps=3", "eval.limit=24", "eval.map_points=0",
        "eval.baselines=false", "model.width=4"]
TINY_CONTEXT = ["method.width=16", "method.heads=2", "method.depth=1", "method.aux_hidden_dim=16",
                "method.block_size=8", "method.eval_contexts=[0,2,6]"]
ENVS = ("rot", "color", "none")
METRICS = ("r2_rot", "r2_color", "r2", "mrr", "hit1", "hit5", "linear.top1")
CHANCE = {"r2_rot": 0.0, "r2_color": 0.0, "r2": 0.0, **chance_mrr_and_hits(20), "linear.top1": 0.1}


def run_arm(method: dict | None, seed: int, out: Path, extra: list[str]) -> dict:
    values = recipe_values(RECIPE)
    if method is not None:
        values["method"] = dict(method)
    cfg = build_config(values, parse_overrides([f"seed={seed}", f"run.dir={out}", "trainer.enable_progress_bar=false",
                                                *extra]))
    start = time.time()
    run_dir = train(resolve_config(cfg))
    trained = time.time()
    results = evaluate_run(run_dir)
    return {"results": results, "train_s": trained - start, "eval_s": time.time() - trained, "run_dir": str(run_dir)}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def collect(runs: list[dict], key: str) -> list[float]:
    return [r["results"][key] for r in runs if key in r["results"]]


def contexts_of(runs: list[dict]) -> list[int]:
    return sorted({int(k.split(".")[0][3:]) for r in runs for k in r["results"] if k.startswith("ctx")})


def tables(arms: dict[str, list[dict]]) -> str:
    ctx_runs, simclr_runs = arms["contextssl"], arms["simclr"]
    lines = ["| model | context | env | " + " | ".join(METRICS) + " |", "|---|---|---|" + "---|" * len(METRICS)]
    lines.append("| chance | - | - | " + " | ".join(f"{CHANCE[m]:.3f}" for m in METRICS) + " |")
    for name, runs, prefix in (("random-init encoder", ctx_runs, "random_init.features."),
                               ("SimCLR (pairs)", simclr_runs, "features."),
                               ("ContextSSL encoder", ctx_runs, "features.")):
        lines.append(f"| {name} | features | - | " + " | ".join(mean_std(collect(runs, prefix + m)) for m in METRICS) + " |")
    for c in contexts_of(ctx_runs):
        for env in ENVS:
            cells = [mean_std(collect(ctx_runs, f"ctx{c}.{env}.{m}")) for m in METRICS]
            lines.append(f"| ContextSSL | {c} | {env} | " + " | ".join(cells) + " |")
    timing = ["", "| arm | seed | train s | eval s |", "|---|---|---|---|"]
    for arm, runs in arms.items():
        timing += [f"| {arm} | {r['seed']} | {r['train_s']:.0f} | {r['eval_s']:.0f} |" for r in runs]
    return "\n".join(lines + timing)


def plot(arms: dict[str, list[dict]], path: Path) -> None:
    ctx_runs, simclr_runs = arms["contextssl"], arms["simclr"]
    lengths = contexts_of(ctx_runs)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, metric in zip(axes, ("r2_rot", "r2_color", "mrr")):
        for env in ENVS:
            means = [statistics.mean(collect(ctx_runs, f"ctx{c}.{env}.{metric}")) for c in lengths]
            spreads = [statistics.stdev(v) if len(v := collect(ctx_runs, f"ctx{c}.{env}.{metric}")) > 1 else 0
                       for c in lengths]
            ax.errorbar(lengths, means, yerr=spreads, marker="o", capsize=3, label=f"ContextSSL, {env} context")
        if collect(simclr_runs, f"features.{metric}"):
            ax.axhline(statistics.mean(collect(simclr_runs, f"features.{metric}")), ls="--", c="grey",
                       label="SimCLR (pairs), features")
        if collect(ctx_runs, f"random_init.features.{metric}"):
            ax.axhline(statistics.mean(collect(ctx_runs, f"random_init.features.{metric}")), ls="-.", c="tab:red",
                       lw=1, label="random-init encoder, features")
        ax.axhline(CHANCE[metric], ls=":", c="k", lw=1, label="chance")
        ax.set_title(metric)
        ax.set_xlabel("context length (tokens)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("bench/results/contextssl"))
    parser.add_argument("--tiny", action="store_true", help="a smoke test: tiny data, model and budget")
    parser.add_argument("--arms", nargs="+", default=["contextssl", "simclr"], choices=["contextssl", "simclr"],
                        help="which arms to run (an ablation of a ContextSSL setting needs only that arm)")
    parser.add_argument("--threads", type=int, help="torch threads (1 is fastest on a busy small CPU)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for both arms (e.g. trainer.max_epochs=30)")
    ns = parser.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)
    ns.out.mkdir(parents=True, exist_ok=True)
    arms: dict[str, list[dict]] = {"contextssl": [], "simclr": []}
    for seed in ns.seeds:
        for arm, method in (("contextssl", None), ("simclr", SIMCLR)):
            if arm not in ns.arms:
                continue
            extra = (TINY + (TINY_CONTEXT if method is None else []) if ns.tiny else []) + list(ns.overrides)
            if method is not None:
                extra = [o for o in extra if not o.startswith("method.")]
            run_dir = ns.out / f"{arm}-seed{seed}"
            finished = run_dir / "bench_record.json"
            if finished.exists():  # resumable: finished runs are read back, with their latest evaluation
                result = {**json.loads(finished.read_text()),
                          "results": json.loads((run_dir / "eval.json").read_text())}
            else:
                result = run_arm(method, seed, run_dir, extra)
                finished.write_text(json.dumps(result, indent=1))
            arms[arm].append({**result, "seed": seed})
            print(f"{arm} seed {seed}: train {result['train_s']:.0f} s, eval {result['eval_s']:.0f} s", flush=True)
    (ns.out / "results.json").write_text(json.dumps(arms, indent=2) + "\n")
    plot(arms, ns.out / "contexts.png")
    text = tables(arms)
    (ns.out / "results.md").write_text(f"# ContextSSL vs SimCLR on RotColor-MNIST\n\n![contexts](contexts.png)\n\n{text}\n")
    print(text)


if __name__ == "__main__":
    main()
