"""Per-layer probing: a linear probe on the globally pooled output of every stage of the
encoder (Kolesnikov, Zhai, Beyer, "Revisiting Self-Supervised Visual Representation Learning",
CVPR 2019, sec. 4.2: with skip connections the last layer stays best; without them quality
falls in the later layers). eval.json: ``layer.<stage>.linear.top1``, and with the baselines on
``random_init.layer.<stage>.linear.top1`` for the same architecture untrained (what training
added at each depth); plot: plots/layers.png.

On a dataset with a continuous target (rotating-digits, ppg-heartpy, ...) every stage also gets
the regression probe (:func:`selfsup.eval.regression.regression_probe`):
``[random_init.]layer.<stage>.regression.{mae,mape,r2}``. For a temporal encoder the pooled
stages average over time, so they test whether a feature carries the target without its time
axis (the embedding a clip-level method would use), where the default regression feature is the
per-frame series' spectrum. The per-frame series itself (stage ``series``, [N, T], no channel
axis) is probed as it is, its T values as the features: averaged over time it would be the
``head`` stage again."""
from __future__ import annotations

import os

import torch
from torch import nn

from selfsup.eval.context import EvalContext, key_prefix, prefixed
from selfsup.eval.features import as_float_inputs, extract_features
from selfsup.eval.label_gate import class_label_gap
from selfsup.eval.linear import linear_probe_accuracy
from selfsup.eval.plots import layer_curves
from selfsup.eval.registry import Evaluation
from selfsup.eval.regression import regression_probe
from selfsup.eval.report import fmt

PLOT = "plots/layers.png"


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """[N, C, ...] -> [N, C]: the mean over every axis after the channel axis."""
    return feature_map.flatten(2).mean(2) if feature_map.dim() > 2 else feature_map


class PooledStages(nn.Module):
    """The globally pooled output of every stage of ``encoder.forward_stages``, concatenated."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([global_pool(m) for m in self.encoder.forward_stages(x).values()], dim=1)


@torch.no_grad()
def stage_widths(encoder: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Stage name -> channels, in order, from one forward pass in eval mode."""
    was_training = encoder.training
    encoder.eval()
    try:
        return {name: m.shape[1] for name, m in encoder.forward_stages(example).items()}
    finally:
        encoder.train(was_training)


def stage_features(encoder: nn.Module, dataset, batch_size: int, device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Pooled features of every stage for every sample: ({stage: [N, C_s]}, labels [N])."""
    example = as_float_inputs(dataset.load(torch.tensor([0]))).to(device)
    widths = stage_widths(encoder.to(device), example)
    wrapper = PooledStages(encoder).train(encoder.training)  # extract_features restores this mode afterwards
    pooled, labels = extract_features(wrapper, dataset, batch_size, device)
    return dict(zip(widths, pooled.split(list(widths.values()), dim=1))), labels


LAYER_SUBJECTS = [("trained", "trained"), ("random_init", "random-init")]  # (encoder, plot label)


def layers(ctx: EvalContext) -> dict:
    """``layer.<stage>.linear.top1`` for every stage of the trained encoder (``--layers``), the
    same as ``random_init.layer.<stage>.linear.top1`` for the untrained encoder when the
    baselines are on, and plots/layers.png (accuracy against depth)."""
    batch, target = int(ctx.cfg.eval.batch_size), ctx.splits.info.get("target")
    results, curves = {}, {}
    for subject, label in LAYER_SUBJECTS:
        if subject not in ctx.encoders:
            continue
        prefix = key_prefix(subject)
        train, train_y = stage_features(ctx.encoders[subject], ctx.bank, batch, ctx.device)
        test, test_y = stage_features(ctx.encoders[subject], ctx.test, batch, ctx.device)
        gap = class_label_gap(train_y, test_y)  # no class labels: the per-layer linear probe is skipped
        if gap is None:
            curves[label] = {name: linear_probe_accuracy(train[name], train_y, test[name], test_y) for name in train}
            results.update({f"{prefix}layer.{name}.linear.top1": value for name, value in curves[label].items()})
        else:
            results["skipped.layers.linear"] = gap
        if target:
            results.update(prefixed(prefix, stage_regression(train, ctx.bank.targets[target], test,
                                                             ctx.test.targets[target])))
    if curves:
        layer_curves(curves, f"{ctx.cfg.recipe}: {ctx.cfg.model.encoder}, per-layer linear probe", ctx.run_dir / PLOT)
    return results


def stage_regression(train: dict[str, torch.Tensor], train_t: torch.Tensor, test: dict[str, torch.Tensor],
                     test_t: torch.Tensor) -> dict[str, float]:
    """``layer.<stage>.regression.{mae,mape,r2}`` of the regression probe on each stage's pooled
    features (from :func:`stage_features`)."""
    results = {}
    for name in train:
        metrics, _ = regression_probe(train[name], train_t, test[name], test_t)
        results.update(prefixed(f"layer.{name}.regression.", metrics))
    return results


def layers_section(ctx: EvalContext, results: dict) -> str:
    found = {k.split(".")[1] for k in results if k.startswith("layer.") and k.endswith((".linear.top1", ".regression.r2"))}
    if not found:
        return ""
    order = stage_widths(ctx.encoders["trained"], as_float_inputs(ctx.test.load(torch.tensor([0]))).to(ctx.device))
    names = [name for name in order if name in found]
    columns = [("top-1", "layer.{}.linear.top1"), ("random-init top-1", "random_init.layer.{}.linear.top1"),
               ("regression MAE", "layer.{}.regression.mae"), ("regression R²", "layer.{}.regression.r2"),
               ("random-init R²", "random_init.layer.{}.regression.r2")]
    columns = [(header, key) for header, key in columns if key.format(names[0]) in results]
    lines = ["## Per-layer linear probe", "", "| stage | " + " | ".join(h for h, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    lines += [f"| {n} | " + " | ".join(fmt(results[key.format(n)]) for _, key in columns) + " |" for n in names]
    if (ctx.run_dir / PLOT).exists():
        lines += ["", f"![per-layer probe]({os.path.relpath(ctx.run_dir / PLOT, ctx.run_dir)})"]
    return "\n".join(lines)


LAYERS = Evaluation(layers, report=layers_section)
