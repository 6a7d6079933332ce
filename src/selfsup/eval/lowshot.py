"""Low-shot linear probes: the linear probe trained on a class-balanced, seeded fraction of the
labels (1 % and 10 % by default, the semi-supervised protocol of Zhai et al. "S4L", ICCV 2019,
and Chen et al. "Big Self-Supervised Models are Strong Semi-Supervised Learners", 2020).
eval.json: ``lowshot.<percent>pct.linear.top1`` (e.g. ``lowshot.10pct.linear.top1``; baselines
prefixed)."""
from __future__ import annotations

import torch

from selfsup.data.splits import stratified_indices
from selfsup.eval.context import EvalContext, key_prefix
from selfsup.eval.registry import Evaluation
from selfsup.eval.linear import linear_probe_accuracy

DEFAULT_FRACTIONS = (0.01, 0.1)


def percent_key(fraction: float) -> str:
    """0.01 -> '1pct', 0.1 -> '10pct', 0.005 -> '0.5pct'."""
    return f"{fraction * 100:g}pct"


def check_fractions(fractions) -> list[float]:
    fractions = [float(f) for f in fractions]
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"label fractions must be in (0, 1] (e.g. --label-fraction 0.01,0.1), got {f}")
    return fractions


def lowshot_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a seeded, class-stratified ``fraction`` of the labelled samples (label >= 0),
    at least one per class present."""
    labelled = torch.nonzero(labels >= 0).flatten()
    classes = len(torch.unique(labels[labelled]))
    if classes < 2:
        raise ValueError(f"low-shot probes need labelled samples of at least 2 classes, found {classes}")
    count = max(classes, round(fraction * len(labelled)))
    return labelled[stratified_indices(labels[labelled], count, seed)]


def lowshot(ctx: EvalContext) -> dict:
    """For every fraction of ``--label-fraction`` (default 1 % and 10 %): the linear probe on
    that share of the training labels, for the trained encoder and each baseline."""
    fractions = check_fractions(ctx.options.get("label_fractions") or DEFAULT_FRACTIONS)
    seed = int(ctx.cfg.seed)
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject)
        for fraction in fractions:
            keep = lowshot_indices(f.train_y, fraction, seed)
            key = f"{key_prefix(subject)}lowshot.{percent_key(fraction)}.linear.top1"
            out[key] = linear_probe_accuracy(f.train_x[keep], f.train_y[keep], f.test_x, f.test_y)
    return out


LOWSHOT = Evaluation(lowshot)
