"""report.md: the evaluation table, the training curves and the embedding map of a run."""
from __future__ import annotations

import os

from selfsup.data.splits import stratified_indices
from selfsup.eval.context import EvalContext
from selfsup.eval.plots import embedding_map, plot_curves, read_metrics

MAIN_ROWS = [("kNN top-1", "knn.top1"), ("kNN top-5", "knn.top5"), ("linear top-1", "linear.top1")]
SUBJECTS = [("trained", ""), ("random-init", "random_init."), ("raw pixels", "raw_pixels.")]
CURVES = ["train/loss", "val/probe_top1", "train/embedding_std", "train/effective_rank"]

# other parts of the library add sections: callables (ctx, results) -> markdown
REPORT_SECTIONS: list = []


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def main_table(results: dict) -> list[str]:
    lines = ["| metric | " + " | ".join(name for name, _ in SUBJECTS) + " |",
             "|---|" + "---|" * len(SUBJECTS)]
    for label, key in MAIN_ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(results.get(prefix + key)) for _, prefix in SUBJECTS) + " |")
    return lines


def other_results(results: dict) -> list[str]:
    shown = {prefix + key for _, prefix in SUBJECTS for _, key in MAIN_ROWS}
    rest = [k for k in sorted(results) if k not in shown]
    if not rest:
        return []
    return ["", "## Other results", "", "| key | value |", "|---|---|"] + [f"| `{k}` | {fmt(results[k])} |" for k in rest]


def write_report(ctx: EvalContext, results: dict) -> None:
    cfg, run_dir = ctx.cfg, ctx.run_dir
    plots = run_dir / "plots"
    lines = [
        f"# {cfg.recipe}: {cfg.method.name} on {cfg.data.name}",
        "",
        f"Encoder `{cfg.model.encoder}`, seed {cfg.seed}. Frozen features, encoder in eval mode; "
        f"kNN bank {len(ctx.bank)} training samples, {len(ctx.test)} test samples; "
        f"weighted kNN (cosine, k={cfg.eval.knn_k} capped at bank-1, T={cfg.eval.knn_temperature}); "
        "linear probe = multinomial logistic regression on standardised features.",
        "",
        *main_table(results),
        *other_results(results),
    ]
    curves = plot_curves(read_metrics(run_dir / "metrics.csv"), CURVES, cfg.recipe, plots / "training.png")
    if curves:
        lines += ["", "## Training", "", f"![training curves]({os.path.relpath(curves, run_dir)})"]
    points = int(cfg.eval.map_points)
    if points > 0 and len(ctx.test) >= 10 and bool((ctx.test.labels >= 0).any()):
        f = ctx.features("trained")
        pick = stratified_indices(f.test_y, points, int(cfg.seed))
        path = embedding_map(f.test_x[pick], f.test_y[pick], list(ctx.splits.class_names), plots / "embedding_map.png",
                             int(cfg.seed))
        lines += ["", "## Test embeddings", "", f"![t-SNE of test embeddings]({os.path.relpath(path, run_dir)})"]
    for section in REPORT_SECTIONS:
        text = section(ctx, results)
        if text:
            lines += ["", text]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
