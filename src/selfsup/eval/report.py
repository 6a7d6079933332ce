"""report.md: how long and how the run trained, where the trained encoder loses to a baseline,
the evaluation table, the training curves and the embedding map of a run."""
from __future__ import annotations

import math
import os
import re
from typing import Sequence

from selfsup.data.splits import stratified_indices
from selfsup.eval.context import EvalContext
from selfsup.eval.plots import embedding_map, read_metrics, training_curves
from selfsup.eval.registry import Evaluation

MAIN_ROWS = [("kNN top-1", "knn.top1"), ("kNN top-5", "knn.top5"), ("linear top-1", "linear.top1")]
SUBJECTS = [("trained", ""), ("random-init", "random_init."), ("raw pixels", "raw_pixels.")]
CURVES = {  # metrics.csv column -> its axis label (name and unit)
    "train/loss": "loss per batch (the method's objective)",
    "train/lr": "learning rate",
    "val/probe_top1": "online probe top-1 on val (fraction)",
    "train/embedding_std": "embedding std per dim (L2-normalised)",
    "train/effective_rank": "effective rank (dimensions)",
}
# probes compared with the baselines: (key pattern, label, higher is better); a pattern's
# ``stage`` group marks a per-layer probe, compared at each subject's best stage
PROBES = [
    (r"knn\.top1", "kNN top-1", True),
    (r"linear\.top1", "linear-probe top-1", True),
    (r"mlp\.top1", "MLP-probe top-1", True),
    (r"finetune\.top1", "fine-tuning top-1", True),
    (r"lowshot\.(?P<pct>[0-9.]+)pct\.linear\.top1", "{pct} % low-shot linear top-1", True),
    (r"regression\.r2", "regression R²", True),
    (r"regression\.mae", "regression MAE", False),
    (r"layer\.(?P<stage>[^.]+)\.(?P<pooling>[^.]+)\.linear\.top1", "per-layer linear top-1, {pooling} (best stage)",
     True),
    (r"layer\.(?P<stage>[^.]+)\.(?P<pooling>[^.]+)\.regression\.r2", "per-layer regression R², {pooling} (best stage)",
     True),
]
BASELINES = [("random_init.", "its random initialisation", "training did not help this probe"),
             ("raw_pixels.", "raw pixels", "the encoder adds nothing over its input on this probe")]


def fmt(value) -> str:
    if isinstance(value, str):  # a reason (skipped.<probe>)
        return value
    if value is None:
        return "-"
    return f"{value:.2g}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"  # e.g. linear.l2 = 1e-05


def main_table(results: dict) -> list[str]:
    lines = ["| metric | " + " | ".join(name for name, _ in SUBJECTS) + " |",
             "|---|" + "---|" * len(SUBJECTS)]
    for label, key in MAIN_ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(results.get(prefix + key)) for _, prefix in SUBJECTS) + " |")
    return lines


def other_results(results: dict) -> list[str]:
    shown = {prefix + key for _, prefix in SUBJECTS for _, key in MAIN_ROWS}
    # skips and the label-free measures: in the "Without labels" section (selfsup.eval.unsupervised)
    rest = [k for k in sorted(results) if k not in shown and not k.startswith("skipped.") and "unsupervised." not in k]
    if not rest:
        return []
    return ["", "## Other results", "", "| key | value |", "|---|---|"] + [f"| `{k}` | {fmt(results[k])} |" for k in rest]


def count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def duration(seconds: float) -> str:
    """12.3 s, 4 min 07 s, 2 h 05 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def run_header(training: dict) -> list[str]:
    """How long and under which conditions the run trained, from its training.json."""
    if not training:
        return ["- **training**: not recorded (no training.json: a run trained before selfsup wrote one)"]
    t = {k: training.get(k, "?") for k in ("method", "encoder", "dataset", "pretrain_samples", "val_samples",
                                           "test_samples", "epochs", "steps", "batch_size", "world_size",
                                           "samples_seen", "precision", "device", "torch", "lightning")}
    passes = ""
    if isinstance(t["samples_seen"], int) and isinstance(t["pretrain_samples"], int) and t["pretrain_samples"] > 0:
        passes = f" ({t['samples_seen'] / t['pretrain_samples']:.2f} passes over the pretrain split)"
    wall = training.get("wall_time_s")
    finished = training.get("finished")
    return [
        f"- **trained**: {t['method']}, encoder `{t['encoder']}`, on {t['dataset']}: {count(t['pretrain_samples'])} "
        f"pretrain samples (among them the {count(t['val_samples'])} of the validation split, labels hidden) / "
        f"{count(t['test_samples'])} test samples",
        f"- **length**: {count(t['steps'])} optimiser steps, epochs completed: {count(t['epochs'])}; batch "
        f"{count(t['batch_size'])} on {count(t['world_size'])} {'process' if t['world_size'] == 1 else 'processes'}: "
        f"{count(t['samples_seen'])} samples seen{passes}",
        f"- **conditions**: precision {t['precision']}, device {t['device']}, wall time "
        f"{duration(float(wall)) if wall is not None else '?'}; torch {t['torch']}, lightning {t['lightning']}",
        "- **status**: " + ("finished" if finished else "not finished (interrupted or still training): the "
                            "numbers above are as of its last checkpoint"),
    ]


def probe_scores(results: dict, prefix: str) -> dict[str, tuple[float, bool, str]]:
    """label -> (value, higher is better, where) of every probe in :data:`PROBES` that
    ``results`` holds under ``prefix`` (a per-layer probe: its best stage, named in ``where``)."""
    scores: dict[str, tuple[float, bool, str]] = {}
    for pattern, label, higher in PROBES:
        for key in sorted(results):
            match = re.fullmatch(pattern, key[len(prefix):]) if key.startswith(prefix) else None
            value = results[key]
            if match is None or not isinstance(value, float) or math.isnan(value):
                continue
            groups = match.groupdict()
            name = label.format(**groups)
            where = f" at {groups['stage']}" if "stage" in groups else ""
            best = scores.get(name)
            if best is None or (value > best[0] if higher else value < best[0]):
                scores[name] = (value, higher, where)
    return scores


def baseline_warnings(results: dict) -> list[str]:
    """A sentence for every probe on which the trained encoder does not beat a baseline that
    was measured on it; a sentence saying so when it beats every one."""
    trained = probe_scores(results, "")
    lines, compared = [], 0
    for prefix, baseline, meaning in BASELINES:
        for name, (base, higher, base_where) in probe_scores(results, prefix).items():
            if name not in trained:
                continue
            value, _, where = trained[name]
            compared += 1
            if value == base:
                relation = "is level with"
            elif (value < base) == higher:
                relation = "is below" if higher else "is above"
            else:
                continue
            order = "" if higher else " (lower is better)"
            lines.append(f"- **Warning**: on {name}{order} the trained encoder ({fmt(value)}{where}) {relation} "
                         f"{baseline} ({fmt(base)}{base_where}): {meaning}.")
    if compared and not lines:
        lines.append(f"- The trained encoder beats every baseline on every probe measured for both ({compared} "
                     "comparisons).")
    return lines


def write_report(ctx: EvalContext, results: dict, evaluations: Sequence[Evaluation], training: dict) -> None:
    """report.md of the run: the main table, the other results, the training curves, the test
    embeddings, then the section of every evaluation in ``evaluations`` that has one.
    ``training`` is the run's training.json (how long and how it trained)."""
    cfg, run_dir = ctx.cfg, ctx.run_dir
    plots = run_dir / "plots"
    lines = [
        f"# {cfg.recipe}: {cfg.method.name} on {cfg.data.name}",
        "",
        *run_header(training),
        "",
        *baseline_warnings(results),
        "",
        f"Encoder `{cfg.model.encoder}`, seed {cfg.seed}. Frozen features, encoder in eval mode; "
        f"kNN bank {len(ctx.bank)} training samples, {len(ctx.test)} test samples; "
        f"weighted kNN (cosine, k={cfg.eval.knn_k} capped at bank-1, T={cfg.eval.knn_temperature}); "
        "linear probe = multinomial logistic regression on standardised features, its L2 strength "
        "chosen on a validation split of the bank (`linear.l2`), fitted to convergence (`linear.converged`).",
        "",
        *main_table(results),
        *other_results(results),
    ]
    curves = training_curves(read_metrics(run_dir / "metrics.csv"), CURVES, f"{cfg.recipe}: training",
                             plots / "training.png")
    if curves:
        lines += ["", "## Training", "", f"![training curves]({os.path.relpath(curves, run_dir)})"]
    points = int(cfg.eval.map_points)
    if points > 0 and len(ctx.test) >= 10 and bool((ctx.test.labels >= 0).any()):
        f = ctx.features("trained")
        pick = stratified_indices(f.test_y, points, int(cfg.seed))
        path = embedding_map(f.test_x[pick], f.test_y[pick], list(ctx.splits.class_names), plots / "embedding_map.png",
                             int(cfg.seed))
        lines += ["", "## Test embeddings", "", f"![t-SNE of test embeddings]({os.path.relpath(path, run_dir)})"]
    for evaluation in evaluations:
        text = evaluation.report(ctx, results) if evaluation.report else ""
        if text:
            lines += ["", text]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
