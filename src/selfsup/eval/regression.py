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
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from selfsup.eval.context import EVALUATIONS, EvalContext, key_prefix, prefixed  # noqa: E402
from selfsup.eval.plots import save_figure  # noqa: E402
from selfsup.eval.report import REPORT_SECTIONS, fmt  # noqa: E402

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


@EVALUATIONS.register("regression")
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


def embedding_by_target(features: torch.Tensor, target: torch.Tensor, label: str, path: Path, title: str) -> Path:
    """Two panels: the test features' first two principal components coloured by the target,
    and the feature matrix with its rows ordered by the target (a frequency-ordered
    embedding shows a smooth band)."""
    x = features.double().numpy()
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    t = target.double().numpy()
    order = np.argsort(t, kind="stable")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    points = ax1.scatter(xy[:, 0], xy[:, 1], c=t, s=6, cmap="viridis")
    fig.colorbar(points, ax=ax1, label=label)
    ax1.set_xlabel("PC 1")
    ax1.set_ylabel("PC 2")
    ax1.set_title("test embeddings (PCA)", fontsize=9)
    scale = np.abs(x[order]).max(0, keepdims=True)
    ax2.imshow(x[order] / np.maximum(scale, 1e-12), aspect="auto", cmap="coolwarm", vmin=-1, vmax=1,
               interpolation="nearest", extent=(0, x.shape[1], t[order][-1], t[order][0]))
    ax2.set_xlabel("feature")
    ax2.set_ylabel(f"{label} (rows ordered)")
    ax2.set_title("features ordered by target (centred, scaled per feature)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


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


REPORT_SECTIONS.append(report_section)
