"""The standard protocol run on every evaluation: weighted kNN and a linear probe."""
from __future__ import annotations

from selfsup.eval.context import EvalContext, key_prefix
from selfsup.eval.registry import Evaluation
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.linear import linear_probe


def knn(ctx: EvalContext) -> dict:
    """``knn.top1`` / ``knn.top5`` (cosine, k = min(eval.knn_k, bank - 1), temperature
    eval.knn_temperature) for the trained encoder and each baseline."""
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject).labelled_test()
        acc = knn_accuracy(f.train_x, f.train_y, f.test_x, f.test_y, ctx.splits.num_classes,
                           int(ctx.cfg.eval.knn_k), float(ctx.cfg.eval.knn_temperature))
        out[f"{key_prefix(subject)}knn.top1"] = acc[1]
        out[f"{key_prefix(subject)}knn.top5"] = acc[5]
    return out


def linear(ctx: EvalContext) -> dict:
    """``linear.top1``: multinomial logistic regression on standardised features, its L2
    strength chosen on a seeded validation split of the bank (:func:`selfsup.eval.linear.linear_probe`),
    with ``linear.l2`` (the chosen strength), ``linear.iterations`` and ``linear.converged``
    (1.0 / 0.0) of the refit, for the trained encoder and each baseline alike."""
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject).labelled_test()
        result = linear_probe(f.train_x, f.train_y, f.test_x, f.test_y, seed=int(ctx.cfg.seed), device=ctx.device)
        prefix = f"{key_prefix(subject)}linear."
        out.update({f"{prefix}top1": result.accuracy, f"{prefix}l2": result.l2,
                    f"{prefix}iterations": float(result.iterations), f"{prefix}converged": float(result.converged)})
    return out


KNN = Evaluation(knn)
LINEAR = Evaluation(linear)
