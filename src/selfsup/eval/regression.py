"""Regression probe: frozen features -> a continuous target (frequency, heart rate, ...).

Runs on datasets whose ``info["target"]`` names a key of ``targets`` (rotating-digits:
``freq``; ppg-heartpy: ``heart_rate``; pig-cvp: ``pulse_cycles``). As SimPer's evaluation
(Yang et al., ICLR 2023, section 4: a linear regressor on frozen features, MAE and MAPE), the
probe is a ridge regression on standardised features, its penalty chosen among 17 values
from 1e-3 to 1e5 by leave-one-out (generalised cross-validation) on the training bank alone.
Results: ``regression.mae`` (target units), ``regression.mape`` (percent),
``regression.r2`` (coefficient of determination on the test set) of the encoder's own
feature (for the per-frame encoders of selfsup.models.temporal: the series' power spectrum,
the spectral probe), for the trained encoder and prefixed for the baselines.

Per-frame encoders get two more readouts, for the trained and the random-init encoder, through
the same probe: ``regression.clip.*``, the pooled clip embedding (the stage before the
one-channel head averaged over time and space: what a clip-level method such as SimCLR
contrasts) and ``regression.series.*``, a linear head on the raw per-frame series of the whole
sequence (its T values: the input of the released code's ``Dense(1)`` probe). Fine-tuning is
the fourth (selfsup.eval.finetune, ``--probe finetune``).

The report gains a table and, for the trained and the random-init encoder, a plot of the test
embeddings ordered and coloured by the target (the paper's Fig. 1), of the encoder's feature
(``plots/embedding_<target>[_random_init].png``) and of the pooled clip embedding
(``plots/embedding_<target>_clip[_random_init].png``).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from selfsup.data.base import IndexedDataset
from selfsup.eval.context import EvalContext, key_prefix, prefixed
from selfsup.eval.features import extract_features
from selfsup.eval.plots import embedding_by_target
from selfsup.eval.registry import Evaluation
from selfsup.eval.report import fmt
from selfsup.models.temporal import encoder_readouts, series_backbone

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
    return regression_metrics(prediction, test_t.double().numpy()), prediction


def regression_metrics(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """{"mae", "mape" (percent), "r2"} of predictions against the true targets."""
    error = np.abs(prediction - truth)
    total = np.sum((truth - truth.mean()) ** 2)
    r2 = 1.0 - float(np.sum((prediction - truth) ** 2) / total) if total > 0 else float("nan")
    return {"mae": float(error.mean()), "mape": float(100 * np.mean(error / np.maximum(np.abs(truth), 1e-12))),
            "r2": r2}


READOUTS = ("clip", "series")  # the extra readouts of a per-frame encoder (regression.<readout>.*)


class Readouts(nn.Module):
    """A per-frame encoder's pooled clip embedding and series, concatenated: [N, clip_dim + T]."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = encoder_readouts(self.encoder, x)
        return torch.cat([r["clip"], r["series"]], dim=1)


def readout_features(encoder: nn.Module, dataset: IndexedDataset, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """{"clip": [N, clip_dim], "series": [N, T]} of every sample of ``dataset``, frozen (eval mode)."""
    wrapper = Readouts(encoder).train(encoder.training)  # extract_features restores this mode afterwards
    x, _ = extract_features(wrapper, dataset, batch_size, device)
    clip_dim = series_backbone(encoder).clip_dim
    return dict(zip(READOUTS, x.split([clip_dim, x.shape[1] - clip_dim], dim=1)))


def readout_regression(encoder: nn.Module, bank: IndexedDataset, test: IndexedDataset, target: str,
                       batch_size: int = 256, device: str | torch.device = "cpu") -> dict[str, float]:
    """``regression.<readout>.{mae,mape,r2}`` of the ridge probe on each of :data:`READOUTS`."""
    return readout_probes(readout_features(encoder, bank, batch_size, device), bank.targets[target],
                          readout_features(encoder, test, batch_size, device), test.targets[target])


def readout_probes(train_f: dict[str, torch.Tensor], train_t: torch.Tensor, test_f: dict[str, torch.Tensor],
                   test_t: torch.Tensor) -> dict[str, float]:
    """The ridge probe on each readout of :func:`readout_features`."""
    out = {}
    for readout in READOUTS:
        metrics, _ = regression_probe(train_f[readout], train_t, test_f[readout], test_t)
        out.update(prefixed(f"regression.{readout}.", metrics))
    return out


def context_readouts(ctx: EvalContext, subject: str, split: str) -> dict[str, torch.Tensor]:
    """:func:`readout_features` of ``ctx.bank`` or ``ctx.test`` (``split``), computed once per
    evaluation: the probes and the report's plots share them."""
    dataset = ctx.bank if split == "bank" else ctx.test
    return ctx.cached(("readouts", subject, split), lambda: readout_features(
        ctx.encoders[subject], dataset, int(ctx.cfg.eval.batch_size), ctx.device))


def has_readouts(encoder: nn.Module) -> bool:
    """Whether ``encoder`` is a per-frame encoder with the clip and series readouts."""
    return series_backbone(encoder) is not None


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
        encoder = ctx.encoders.get(subject)
        if encoder is not None and has_readouts(encoder):
            out.update(prefixed(key_prefix(subject), readout_probes(
                context_readouts(ctx, subject, "bank"), ctx.bank.targets[name],
                context_readouts(ctx, subject, "test"), ctx.test.targets[name])))
    return out


ROWS = [("regression.{}", "encoder feature (spectral probe)"), ("regression.clip.{}", "pooled clip embedding"),
        ("regression.series.{}", "linear head on the per-frame series"), ("finetune.regression.{}", "fine-tuned")]
PLOTTED = [("trained", ""), ("random_init", "_random_init")]  # (encoder, file-name suffix)


def report_section(ctx: EvalContext, results: dict) -> str:
    name = target_name(ctx)
    if name is None or "regression.mae" not in results:
        return ""
    unit = ctx.splits.info.get("target_unit", "")
    subjects = [(s, key_prefix(s)) for s in ctx.subjects()]
    lines = [f"## Regression probe: {name}" + (f" ({unit})" if unit else ""), "",
             "Ridge regression on standardised frozen features (penalty by leave-one-out on the training bank); "
             "fine-tuned: the whole encoder and a linear head (selfsup.eval.finetune).", "",
             "| readout | metric | " + " | ".join(s for s, _ in subjects) + " |", "|---|---|" + "---|" * len(subjects)]
    for key, readout in ROWS:
        for metric, label in (("mae", "MAE"), ("mape", "MAPE %"), ("r2", "R²")):
            if any(f"{p}{key.format(metric)}" in results for _, p in subjects):
                lines.append(f"| {readout} | {label} | "
                             + " | ".join(fmt(results.get(f"{p}{key.format(metric)}")) for _, p in subjects) + " |")
    if len(ctx.test) >= 3:
        lines.append("")
        for subject, suffix in PLOTTED:
            if subject not in ctx.encoders:
                continue
            title = f"{ctx.cfg.recipe} (method {ctx.cfg.method.name}, {subject.replace('_', '-')})"
            plots = {"": ctx.features(subject).test_x}
            if has_readouts(ctx.encoders[subject]):
                plots["_clip"] = context_readouts(ctx, subject, "test")["clip"]
            for kind, features in plots.items():
                what = "pooled clip embeddings" if kind else "test embeddings"
                path = embedding_by_target(features, ctx.test.targets[name], name,
                                           ctx.run_dir / "plots" / f"embedding_{name}{kind}{suffix}.png",
                                           f"{title}: {what} by {name}")
                lines.append(f"![{subject}: {what} by {name}]({os.path.relpath(path, ctx.run_dir)})")
    return "\n".join(lines)


REGRESSION = Evaluation(regression, report=report_section)
