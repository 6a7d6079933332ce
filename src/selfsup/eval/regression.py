"""Regression probe: frozen features -> a continuous target (frequency, heart rate, ...).

Runs on datasets whose ``info["target"]`` names a key of ``targets`` (rotating-digits:
``freq``; ppg-heartpy: ``heart_rate``; pig-cvp: ``pulse_cycles``). As SimPer's evaluation
(Yang et al., ICLR 2023, section 4: a linear regressor on frozen features, MAE and MAPE), the
probe is a ridge regression on standardised features, its penalty chosen among 17 values
from 1e-3 to 1e5 by leave-one-out (generalised cross-validation) on the training bank alone.
Results: ``regression.mae`` (target units), ``regression.mape`` (percent),
``regression.r2`` (coefficient of determination on the test set), for the trained encoder and
prefixed for the baselines. The report gains a table and a plot of the test embeddings
ordered and coloured by the target.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from selfsup.eval.context import EvalContext, key_prefix, prefixed
from selfsup.eval.plots import embedding_by_target
from selfsup.eval.registry import Evaluation
from selfsup.eval.report import fmt

ALPHAS = np.logspace(-3, 5, 17)


def regression_probe(train_x: torch.Tensor, train_t: torch.Tensor, test_x: torch.Tensor,
                     test_t: torch.Tensor) -> tuple[dict[str, float], np.ndarray]:
    """({"mae", "mape", "r2"}, test predictions) of a ridge regression on standardised features."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    if len(train_x) != len(train_t) or len(test_x) != len(test_t):
        raise ValueError(f"features and targets differ in length: train {len(train_x)} vs {len(train_t)}, "
                         f"test {len(test_x)} vs {len(test_t)}")
    scaler = StandardScaler().fit(train_x.double().numpy())
    y = train_t.double().numpy()
    model = RidgeCV(alphas=ALPHAS).fit(scaler.transform(train_x.double().numpy()), y)
    prediction = model.predict(scaler.transform(test_x.double().numpy()))
    truth = test_t.double().numpy()
    error = np.abs(prediction - truth)
    total = np.sum((truth - truth.mean()) ** 2)
    r2 = 1.0 - float(np.sum((prediction - truth) ** 2) / total) if total > 0 else float("nan")
    metrics = {"mae": float(error.mean()), "mape": float(100 * np.mean(error / np.maximum(np.abs(truth), 1e-12))),
               "r2": r2}
    return metrics, prediction


def target_name(ctx: EvalContext) -> str | None:
    name = ctx.splits.info.get("target")
    if name and name in ctx.bank.targets and name in ctx.test.targets:
        return name
    return None


def regression(ctx: EvalContext) -> dict:
    """``regression.{mae,mape,r2}`` of the dataset's target for the trained encoder and each
    baseline; nothing for datasets without a regression target."""
    name = target_name(ctx)
    if name is None:
        return {}
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject)
        metrics, _ = regression_probe(f.train_x, ctx.bank.targets[name], f.test_x, ctx.test.targets[name])
        out.update(prefixed(f"{key_prefix(subject)}regression.", metrics))
    return out


def report_section(ctx: EvalContext, results: dict) -> str:
    name = target_name(ctx)
    if name is None or "regression.mae" not in results:
        return ""
    unit = ctx.splits.info.get("target_unit", "")
    subjects = [(s, key_prefix(s)) for s in ctx.subjects()]
    lines = [f"## Regression probe: {name}" + (f" ({unit})" if unit else ""), "",
             "Ridge regression on standardised frozen features (penalty by leave-one-out on the training bank).", "",
             "| metric | " + " | ".join(s for s, _ in subjects) + " |", "|---|" + "---|" * len(subjects)]
    for metric, label in (("mae", "MAE"), ("mape", "MAPE %"), ("r2", "R²")):
        lines.append(f"| {label} | " + " | ".join(fmt(results.get(f"{p}regression.{metric}")) for _, p in subjects) + " |")
    if len(ctx.test) >= 3:
        f = ctx.features("trained")
        path = embedding_by_target(f.test_x, ctx.test.targets[name], name, ctx.run_dir / "plots" / f"embedding_{name}.png",
                                   f"{ctx.cfg.recipe} (method {ctx.cfg.method.name}): test embeddings by {name}")
        lines += ["", f"![test embeddings by {name}]({os.path.relpath(path, ctx.run_dir)})"]
    return "\n".join(lines)


REGRESSION = Evaluation(regression, report=report_section)
