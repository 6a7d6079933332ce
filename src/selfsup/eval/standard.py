"""The standard protocol run on every evaluation: weighted kNN and a linear probe."""
from __future__ import annotations

from selfsup.eval.context import EVALUATIONS, EvalContext, key_prefix
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.linear import linear_probe_accuracy


@EVALUATIONS.register("knn")
def knn(ctx: EvalContext) -> dict:
    """``knn.top1`` / ``knn.top5`` (cosine, k = min(eval.knn_k, bank - 1), temperature
    eval.knn_temperature) for the trained encoder and each baseline."""
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject)
        acc = knn_accuracy(f.train_x, f.train_y, f.test_x, f.test_y, ctx.splits.num_classes,
                           int(ctx.cfg.eval.knn_k), float(ctx.cfg.eval.knn_temperature))
        out[f"{key_prefix(subject)}knn.top1"] = acc[1]
        out[f"{key_prefix(subject)}knn.top5"] = acc[5]
    return out


@EVALUATIONS.register("linear")
def linear(ctx: EvalContext) -> dict:
    """``linear.top1``: multinomial logistic regression on standardised features."""
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject)
        out[f"{key_prefix(subject)}linear.top1"] = linear_probe_accuracy(f.train_x, f.train_y, f.test_x, f.test_y)
    return out
