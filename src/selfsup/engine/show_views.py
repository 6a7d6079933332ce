"""``selfsup show-views``: a PNG grid of a method's augmented views, to see what it trains on."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from selfsup.data import build_data
from selfsup.data.splits import stratified_indices
from selfsup.engine.build import build_method
from selfsup.engine.module import inputs_to_float
from selfsup.methods.base import ViewColumn
from selfsup.eval.plots import view_grid


def save_view_grid(cfg: DictConfig, out: Path, samples: int = 8) -> Path:
    """Rows: ``samples`` training images (one per class first); columns: the original, then
    the method's views of it (:meth:`Method.view_columns`)."""
    splits = build_data(cfg.data, int(cfg.seed))
    if splits.kind != "image":
        raise ValueError(f"show-views draws images; {cfg.data.name} holds {splits.kind}s")
    method = build_method(cfg, splits)
    index = stratified_indices(splits.train.labels, samples, int(cfg.seed))[:samples]
    x = inputs_to_float(splits.train.load(index))
    views = method.make_views(x, torch.Generator().manual_seed(int(cfg.seed)))
    columns = [ViewColumn("original", x), *method.view_columns(x, views)]
    return view_grid([(c.title, c.images, c.captions) for c in columns],
                     f"{cfg.recipe}: {cfg.method.name} views of {cfg.data.name}", out)
