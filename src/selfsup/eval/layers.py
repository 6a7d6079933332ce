"""Per-layer probing: a linear probe on the pooled output of every stage of the encoder
(Kolesnikov, Zhai, Beyer, "Revisiting Self-Supervised Visual Representation Learning", CVPR 2019,
sec. 4.2: with skip connections the last layer stays best; without them quality falls in the
later layers). eval.json: ``layer.<stage>.<pooling>.linear.top1`` and the probe's input size
``layer.<stage>.<pooling>.features``, and with the baselines on ``random_init.layer.…`` for the
same architecture untrained (what training added at each depth); plot: plots/layers.png.

Two poolings, chosen by ``eval.layer_pooling`` (comma-separated; both by default):

- ``adaptive-max``, the paper's for intermediate layers: each stage's map [C, H, W] adaptively max-pooled to
  the grid h x w (h <= H, w <= W, the map's aspect ratio kept) whose C h w is closest to
  ``eval.layer_features`` (default 9,000), so every stage is probed at a comparable, large size
  (a ResNet-50 at 224 px would give 256x6x6 = 9,216, 512x4x4 = 8,192, 1024x3x3 = 9,216, 2048x2x2 = 8,192). A
  map already smaller than the target is probed whole.
- ``global-avg``: the mean over the spatial axes, C features per stage, so the probe's size
  grows with depth (16/32/64/128 at width 16).

On a dataset with a continuous target (rotating-digits, ppg-heartpy, ...) every stage also gets
the regression probe (:func:`selfsup.eval.regression.regression_probe`):
``[random_init.]layer.<stage>.<pooling>.regression.{mae,mape,r2}``. For a temporal encoder
``global-avg`` averages over time, so it tests whether a feature carries the target without its
time axis (the embedding a clip-level method would use), where the default regression feature
is the per-frame series' spectrum; ``adaptive-max`` keeps a coarse time axis. The per-frame
series itself (stage ``series``, [N, T], no channel axis) is probed as it is under either
pooling, its T values as the features: averaged over time it would be the ``head`` stage again.

Memory: one pass over the data per group of stages whose features together stay within
``eval.layer_features`` (under ``adaptive-max`` about one stage per pass; under ``global-avg``
alone, all stages in one pass), so the bank holds one stage's ~9,000 features at a time."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.config.schema import LAYER_POOLINGS
from selfsup.eval.context import EvalContext, key_prefix, prefixed
from selfsup.eval.features import as_float_inputs, extract_features
from selfsup.eval.label_gate import class_label_gap
from selfsup.eval.linear import linear_probe_accuracy
from selfsup.eval.plots import layer_curves
from selfsup.eval.registry import Evaluation
from selfsup.eval.regression import regression_probe
from selfsup.eval.report import fmt

PLOT = "plots/layers.png"
LAYER_FEATURES = 9000  # eval.layer_features' default: Kolesnikov et al.'s ~9,000 features per stage


def global_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """[N, C, ...] -> [N, C]: the mean over every axis after the channel axis."""
    return feature_map.flatten(2).mean(2) if feature_map.dim() > 2 else feature_map


def adaptive_grid(shape: Sequence[int], target: int) -> tuple[int, ...]:
    """The output grid of ``adaptive-max`` for a stage map of ``shape`` = (C, *spatial): each
    axis at most the map's, the map's aspect ratio kept (the other axes scaled with the
    first), with C x prod(grid) closest to ``target`` (ties: the smaller grid). () for a map
    without spatial axes."""
    channels, spatial = int(shape[0]), [int(s) for s in shape[1:]]
    best: tuple[int, ...] = ()
    for first in range(1, spatial[0] + 1 if spatial else 1):
        grid = (first, *(min(s, max(1, round(first * s / spatial[0]))) for s in spatial[1:]))
        if not best or abs(channels * math.prod(grid) - target) < abs(channels * math.prod(best) - target):
            best = grid
    return best


@dataclass(frozen=True)
class StageReadout:
    """One stage's map pooled one way: ``global-avg`` (its mean over space / time) or
    ``adaptive-max`` (adaptive max pooling to ``grid``); a map without spatial axes as it is."""

    stage: str
    pooling: str
    grid: tuple[int, ...]  # adaptive-max's output size per spatial axis; () otherwise
    size: int  # features per sample

    def __call__(self, feature_map: torch.Tensor) -> torch.Tensor:
        if feature_map.dim() == 2:
            return feature_map
        if self.pooling == "global-avg":
            return global_pool(feature_map)
        pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[feature_map.dim() - 2]
        return pool(feature_map, self.grid).flatten(1)


def readout(stage: str, shape: Sequence[int], pooling: str, target: int) -> StageReadout:
    """The readout of a stage map of ``shape`` (C, *spatial) under ``pooling``."""
    if pooling not in LAYER_POOLINGS:
        raise ValueError(f"unknown layer pooling {pooling!r}; valid: {', '.join(LAYER_POOLINGS)}")
    if len(shape) == 1:  # no spatial axes ([N, C] embeddings, the per-frame series [N, T]): as they are
        return StageReadout(stage, pooling, (), int(shape[0]))
    if len(shape) > 4:
        raise ValueError(f"stage {stage!r} has {len(shape) - 1} spatial axes; per-layer pooling handles 1 to 3")
    if pooling == "global-avg":
        return StageReadout(stage, pooling, (), int(shape[0]))
    grid = adaptive_grid(shape, target)
    return StageReadout(stage, pooling, grid, int(shape[0]) * math.prod(grid))


class PooledStages(nn.Module):
    """The ``readouts`` of the maps of ``encoder.forward_stages``, concatenated in their order;
    without ``readouts``, every stage's global average pool."""

    def __init__(self, encoder: nn.Module, readouts: Sequence[StageReadout] | None = None):
        super().__init__()
        self.encoder = encoder
        self.readouts = None if readouts is None else list(readouts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder.forward_stages(x)
        if self.readouts is None:
            return torch.cat([global_pool(m) for m in maps.values()], dim=1)
        return torch.cat([r(maps[r.stage]) for r in self.readouts], dim=1)


@torch.no_grad()
def stage_shapes(encoder: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Stage name -> the shape of one sample's map (C, *spatial), in order, from one forward
    pass in eval mode."""
    was_training = encoder.training
    encoder.eval()
    try:
        return {name: tuple(m.shape[1:]) for name, m in encoder.forward_stages(example).items()}
    finally:
        encoder.train(was_training)


def stage_readouts(encoder: nn.Module, example: torch.Tensor, poolings: Sequence[str],
                   target: int = LAYER_FEATURES) -> list[StageReadout]:
    """Every stage under every pooling, stage by stage."""
    return [readout(name, shape, pooling, target) for name, shape in stage_shapes(encoder, example).items()
            for pooling in poolings]


def passes(readouts: Sequence[StageReadout], budget: int) -> list[list[StageReadout]]:
    """``readouts`` in consecutive groups whose features add up to at most ``budget`` (a readout
    larger than that alone): one pass over the data per group."""
    groups: list[list[StageReadout]] = []
    for r in readouts:
        if groups and sum(g.size for g in groups[-1]) + r.size <= budget:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def readout_features(encoder: nn.Module, dataset, batch_size: int, device,
                     readouts: Sequence[StageReadout]) -> tuple[dict[StageReadout, torch.Tensor], torch.Tensor]:
    """({readout: [N, size]}, labels [N]) for every sample, in one pass."""
    wrapper = PooledStages(encoder, readouts).train(encoder.training)  # extract_features restores this mode
    pooled, labels = extract_features(wrapper, dataset, batch_size, device)
    return dict(zip(readouts, pooled.split([r.size for r in readouts], dim=1))), labels


def stage_features(encoder: nn.Module, dataset, batch_size: int, device, pooling: str = "global-avg",
                   target: int = LAYER_FEATURES) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Pooled features of every stage for every sample, in one pass: ({stage: [N, d_s]}, labels [N])."""
    example = as_float_inputs(dataset.load(torch.tensor([0]))).to(device)
    readouts = stage_readouts(encoder.to(device), example, [pooling], target)
    features, labels = readout_features(encoder, dataset, batch_size, device, readouts)
    return {r.stage: x for r, x in features.items()}, labels


def layer_poolings(value: str) -> list[str]:
    """``eval.layer_pooling`` (comma-separated, checked with the config) as a list, duplicates dropped."""
    return list(dict.fromkeys(name.strip() for name in str(value).split(",")))


LAYER_SUBJECTS = [("trained", "trained"), ("random_init", "random-init")]  # (encoder, plot label): a colour each
LINESTYLES = ("-", "--")  # one per pooling, in eval.layer_pooling's order


def layers(ctx: EvalContext) -> dict:
    """For every stage of the trained encoder (``--layers``) under every pooling of
    ``eval.layer_pooling``: ``layer.<stage>.<pooling>.linear.top1`` and ``.features`` (the
    probe's input size), the same prefixed ``random_init.`` for the untrained encoder when the
    baselines are on, the regression probe's on data with a continuous target, and
    plots/layers.png (accuracy against depth, one line per encoder and pooling)."""
    batch, target = int(ctx.cfg.eval.batch_size), ctx.splits.info.get("target")
    poolings, budget = layer_poolings(ctx.cfg.eval.layer_pooling), int(ctx.cfg.eval.layer_features)
    example = as_float_inputs(ctx.test.load(torch.tensor([0]))).to(ctx.device)
    results, curves, styles = {}, {}, {}
    for subject, label in LAYER_SUBJECTS:
        if subject not in ctx.encoders:
            continue
        prefix, encoder = key_prefix(subject), ctx.encoders[subject].to(ctx.device)
        for group in passes(stage_readouts(encoder, example, poolings, budget), budget):
            train, train_y = readout_features(encoder, ctx.bank, batch, ctx.device, group)
            test, test_y = readout_features(encoder, ctx.test, batch, ctx.device, group)
            gap = class_label_gap(train_y, test_y)  # no class labels: the per-layer linear probe is skipped
            for r in group:
                key = f"{prefix}layer.{r.stage}.{r.pooling}."
                results[key + "features"] = r.size
                if gap is None:
                    top1 = linear_probe_accuracy(train[r], train_y, test[r], test_y)
                    results[key + "linear.top1"] = top1
                    curves.setdefault(f"{label}, {r.pooling}", {})[r.stage] = top1
                    styles[f"{label}, {r.pooling}"] = {"color": f"C{LAYER_SUBJECTS.index((subject, label))}",
                                                       "linestyle": LINESTYLES[poolings.index(r.pooling)]}
                else:
                    results["skipped.layers.linear"] = gap
            if target:
                named = {f"{r.stage}.{r.pooling}": r for r in group}
                results.update(prefixed(prefix, stage_regression(
                    {n: train[r] for n, r in named.items()}, ctx.bank.targets[target],
                    {n: test[r] for n, r in named.items()}, ctx.test.targets[target])))
    if curves:
        layer_curves(curves, f"{ctx.cfg.recipe}: {ctx.cfg.model.encoder}, per-layer linear probe", ctx.run_dir / PLOT,
                     styles)
    return results


def stage_regression(train: dict[str, torch.Tensor], train_t: torch.Tensor, test: dict[str, torch.Tensor],
                     test_t: torch.Tensor) -> dict[str, float]:
    """``layer.<name>.regression.{mae,mape,r2}`` of the regression probe on each named set of
    pooled features (``<name>``: a stage, as from :func:`stage_features`, or ``<stage>.<pooling>``)."""
    results = {}
    for name in train:
        metrics, _ = regression_probe(train[name], train_t, test[name], test_t)
        results.update(prefixed(f"layer.{name}.regression.", metrics))
    return results


POOLING_NOTES = {
    "adaptive-max": "adaptive-max: each stage's map max-pooled to the grid whose features come closest to "
                    "`eval.layer_features` (Kolesnikov et al. 2019)",
    "global-avg": "global-avg: one mean per channel (the probe grows with depth)",
}


def cell(key: str, value) -> str:
    return str(int(value)) if key.endswith(".features") and value is not None else fmt(value)  # a count as it is


def layers_section(ctx: EvalContext, results: dict) -> str:
    """The per-layer table: a row per stage, for each pooling its probe size and scores."""
    found = [k.split(".")[1:3] for k in results if k.startswith("layer.") and k.endswith(".features")]
    if not found:
        return ""
    stages, poolings = list(dict.fromkeys(s for s, _ in found)), list(dict.fromkeys(p for _, p in found))
    cells = [("features", "", "features"), ("top-1", "", "linear.top1"),
             ("random-init top-1", "random_init.", "linear.top1"), ("regression MAE", "", "regression.mae"),
             ("regression R²", "", "regression.r2"), ("random-init R²", "random_init.", "regression.r2")]
    columns = [(f"{pooling} {header}", f"{subject}layer.{{}}.{pooling}.{metric}")
               for pooling in poolings for header, subject, metric in cells
               if f"{subject}layer.{stages[0]}.{pooling}.{metric}" in results]
    lines = ["## Per-layer linear probe", "",
             "Stage poolings (`eval.layer_pooling`): " + "; ".join(POOLING_NOTES[p] for p in poolings) + ".", "",
             "| stage | " + " | ".join(h for h, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {n} | " + " | ".join(cell(key, results.get(key.format(n))) for _, key in columns) + " |"
              for n in stages]
    if (ctx.run_dir / PLOT).exists():
        lines += ["", f"![per-layer probe]({os.path.relpath(ctx.run_dir / PLOT, ctx.run_dir)})"]
    return "\n".join(lines)


LAYERS = Evaluation(layers, report=layers_section)
