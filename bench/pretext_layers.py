"""The skip-connection experiment of Kolesnikov, Zhai, Beyer ("Revisiting Self-Supervised Visual
Representation Learning", CVPR 2019, sec. 4.2): RotNet on Fashion-MNIST with ``resnet-small``
and ``plainnet-small`` (the same network without skip connections), then a linear probe on
every stage, pooled both ways (``eval.layer_pooling``): ``adaptive-max`` to about
``--layer-features`` features per stage (the paper's ~9,000) and ``global-avg`` (C per stage).
Their claim: with skip connections the last stage stays best; without them quality falls in the
later stages. Each encoder's untrained initialisation is probed the same way
(``random_init.layer.<stage>.<pooling>.linear.top1``): what training added per stage.

    python bench/pretext_layers.py [--encoders resnet-small,plainnet-small] [--seeds 0,1]
        [--epochs 3] [--limit N] [--width 32] [--eval-limit N] [--pooling adaptive-max,global-avg]
        [--layer-features 9000] [--out bench/results/pretext-layers]

Each (encoder, seed) trains into its own run folder under --out and is reused when it exists,
so the experiment can be run one encoder / seed per call and summarised by a last call. Writes
--out/layers.md (table), --out/layers.png (accuracy against depth, both encoders), and
--out/layers.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pretext_runs import mean_std, train_and_evaluate  # noqa: E402

STAGES = ["block1", "block2", "block3", "block4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="resnet-small,plainnet-small")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=float, default=3, help="trainer.max_epochs (the recipe's 3)")
    parser.add_argument("--max-steps", type=int, default=-1, help="trainer.max_steps (-1: by epochs)")
    parser.add_argument("--limit", type=int, default=None, help="data.limit: training images")
    parser.add_argument("--width", type=int, default=32, help="model.width")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (x4 rotations)")
    parser.add_argument("--eval-limit", type=int, default=None, help="eval.limit: probe bank and test size")
    parser.add_argument("--pooling", default="adaptive-max,global-avg", help="eval.layer_pooling")
    parser.add_argument("--layer-features", type=int, default=9000, help="eval.layer_features (adaptive-max)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pretext-layers"))
    args = parser.parse_args()

    encoders, seeds = args.encoders.split(","), [int(s) for s in args.seeds.split(",")]
    poolings = args.pooling.split(",")
    results: dict[str, list[dict]] = {}
    for encoder in encoders:
        for seed in seeds:
            overrides = [f"model.encoder={encoder}", f"model.width={args.width}", f"seed={seed}",
                         f"trainer.max_epochs={args.epochs}", f"trainer.max_steps={args.max_steps}",
                         f"data.batch_size={args.batch_size}", "trainer.enable_progress_bar=false",
                         "eval.map_points=0", f"eval.layer_pooling={args.pooling}",
                         f"eval.layer_features={args.layer_features}"]
            if args.limit:
                overrides.append(f"data.limit={args.limit}")
            if args.eval_limit:
                overrides.append(f"eval.limit={args.eval_limit}")
            run = train_and_evaluate("rotnet-fashion-mnist", overrides, args.out / f"{encoder}-seed{seed}", ["layers"])
            results.setdefault(encoder, []).append(run)
            print(encoder, seed, {f"{s} {p}": round(run[f"layer.{s}.{p}.linear.top1"], 4)
                                  for s in STAGES for p in poolings}, f"train {run['train_seconds']:.0f} s")

    lines = ["| encoder | pooling | " + " | ".join(STAGES) + " | best stage | features per stage | RotNet pretext "
             "top-1 | train s |", "|---|---|" + "---|" * (len(STAGES) + 4)]
    fig, axes = plt.subplots(1, len(poolings), figsize=(5.5 * len(poolings), 3.5), squeeze=False)
    for ax, pooling in zip(axes[0], poolings):
        for colour, (encoder, runs) in enumerate(results.items()):
            for prefix, style in (("", "-"), ("random_init.", "--")):
                per_stage = [[r[f"{prefix}layer.{s}.{pooling}.linear.top1"] for r in runs] for s in STAGES]
                means = [sum(v) / len(v) for v in per_stage]
                trained = not prefix
                pretext = [r["pretext_top1"] for r in runs if trained and r["pretext_top1"] is not None]
                seconds = f"{sum(r['train_seconds'] for r in runs) / len(runs):.0f}" if trained else "-"
                sizes = "/".join(str(runs[0][f"{prefix}layer.{s}.{pooling}.features"]) for s in STAGES)
                label = encoder if trained else f"{encoder}, random-init"
                lines.append(f"| {label} | {pooling} | " + " | ".join(mean_std(v) for v in per_stage)
                             + f" | {STAGES[means.index(max(means))]} | {sizes} | {mean_std(pretext)} | {seconds} |")
                ax.plot(range(len(STAGES)), means, style, color=f"C{colour}", marker="o", label=label)
        ax.set_title(f"{pooling} pooling", fontsize=9)
        ax.set_xticks(range(len(STAGES)), STAGES)
        ax.set_xlabel("stage (input -> output)")
        ax.set_ylabel("linear probe top-1 (test)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"RotNet on Fashion-MNIST, per-layer probe (seeds {args.seeds})", fontsize=9)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "layers.png", dpi=110)
    settings = (f"epochs {args.epochs}, max_steps {args.max_steps}, data.limit {args.limit}, width {args.width}, "
                f"batch {args.batch_size}, eval.limit {args.eval_limit}, eval.layer_pooling {args.pooling}, "
                f"eval.layer_features {args.layer_features}, seeds {args.seeds}")
    (args.out / "layers.md").write_text(f"RotNet on Fashion-MNIST ({settings})\n\n" + "\n".join(lines) + "\n")
    (args.out / "layers.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    print(f"wrote {args.out / 'layers.md'} and {args.out / 'layers.png'}")


if __name__ == "__main__":
    main()
