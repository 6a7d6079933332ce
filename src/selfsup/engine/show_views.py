"""``selfsup show-views``: a PNG grid of a method's augmented views, to see what it trains on."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from selfsup.data import build_data  # noqa: E402
from selfsup.data.splits import stratified_indices  # noqa: E402
from selfsup.engine.build import build_method, resolve_config  # noqa: E402
from selfsup.engine.module import inputs_to_float  # noqa: E402
from selfsup.methods.base import ViewColumn  # noqa: E402
from selfsup.eval.plots import save_figure  # noqa: E402


def as_picture(image: torch.Tensor):
    """[C, H, W] -> an array matplotlib shows in 0..1 (grey for one channel); images outside
    0..1 (standardised patches) are stretched to it."""
    image = image.detach().float()
    low, high = image.min(), image.max()
    if low < 0 or high > 1:
        image = (image - low) / (high - low).clamp_min(1e-8)
    return image[0].numpy() if image.shape[0] == 1 else image[:3].permute(1, 2, 0).numpy()


def save_view_grid(cfg: DictConfig, out: Path, samples: int = 8) -> Path:
    """Rows: ``samples`` training images (one per class first); columns: the original, then
    the method's views of it (:meth:`Method.view_columns`)."""
    cfg = resolve_config(cfg)
    splits = build_data(cfg.data, int(cfg.seed))
    if splits.kind != "image":
        raise ValueError(f"show-views draws images; {cfg.data.name} holds {splits.kind}s")
    method = build_method(cfg, splits)
    index = stratified_indices(splits.train.labels, samples, int(cfg.seed))[:samples]
    x = inputs_to_float(splits.train.load(index))
    views = method.make_views(x, torch.Generator().manual_seed(int(cfg.seed)))
    columns = [ViewColumn("original", x), *method.view_columns(x, views)]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(max(1.3 * len(columns), 4.5), 1.4 * len(x)), squeeze=False)
    for r in range(len(x)):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(as_picture(column.images[r]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(column.title, fontsize=7)
            if column.captions is not None:
                ax.set_xlabel(column.captions[r], fontsize=6)
    fig.suptitle(f"{cfg.recipe}: {cfg.method.name} views of {cfg.data.name}", fontsize=9)
    return save_figure(fig, out, dpi=120)
