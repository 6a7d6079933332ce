"""Every figure of selfsup, each drawn on its own :class:`matplotlib.figure.Figure` (never
pyplot, never ``matplotlib.use``: importing selfsup leaves the user's matplotlib as it was):
training curves, the t-SNE map of test embeddings, per-layer probe accuracy, embeddings by a
continuous target, ContextSSL metrics against context length and the ``show-views`` grid.
Each function writes one PNG and returns its path. No other module of selfsup imports matplotlib."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SHORT_SERIES = 30  # a series with fewer points gets a marker on each one


def new_figure(width: float, height: float) -> Figure:
    """A figure laid out tightly (suptitle included) when it is saved."""
    return Figure(figsize=(width, height), layout="tight")


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path``, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def read_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """metrics.csv (Lightning's CSV logger) -> metric -> [(step, value)], rows without it skipped."""
    if not path.exists():
        return {}
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in (None, ""):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def training_curves(series: dict[str, list[tuple[float, float]]], panels: dict[str, str], title: str,
                    path: Path) -> Path | None:
    """One panel per key of ``panels`` present in ``series`` (from :func:`read_metrics`): its
    values against the optimiser step (one step range for every panel, so a once-an-epoch
    metric sits where it was measured), the y axis labelled ``panels[key]`` (name and unit),
    markers on short series; at most three panels a row. None when no key has a value."""
    present = [k for k in panels if series.get(k)]
    if not present:
        return None
    every_step = [step for k in present for step, _ in series[k]]
    low, high = min(every_step), max(every_step)
    pad = 0.03 * (high - low) if high > low else 0.5
    cols = min(3, len(present))
    rows = math.ceil(len(present) / cols)
    fig = new_figure(4.2 * cols, 3.2 * rows)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, key in zip(axes, present):
        steps, values = zip(*sorted(series[key]))
        ax.plot(steps, values, lw=1, marker="o" if len(steps) < SHORT_SERIES else None, ms=3)
        ax.set_xlabel("optimiser step")
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylabel(panels[key], fontsize=8)
        ax.set_title(key, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(present):]:  # the unused panels of the last row
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def embedding_map(features: torch.Tensor, labels: Optional[torch.Tensor], names: list[str], path: Path,
                  seed: int = 0, title: str = "t-SNE of test embeddings") -> Path:
    """A t-SNE map (scikit-learn, PCA-initialised, seeded) of ``features`` coloured by label
    (uncoloured, without a legend, when ``labels`` is None)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = features.float().numpy()
    x = PCA(n_components=min(50, x.shape[1], x.shape[0]), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(x) - 1) / 3)))
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)
    fig = new_figure(6, 5)
    ax = fig.subplots()
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, color="0.3")
    else:
        y = labels.numpy()
        for k in np.unique(y):
            name = names[k] if 0 <= k < len(names) else str(k)
            ax.scatter(xy[y == k, 0], xy[y == k, 1], s=4, label=name)
        ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return save_figure(fig, path)


def layer_curves(curves: dict[str, dict[str, float]], title: str, path: Path,
                 styles: dict[str, dict] | None = None) -> Path:
    """Linear-probe accuracy against depth, one line per subject ({label: {stage: top-1}});
    ``styles``: matplotlib line settings by label (e.g. a colour per encoder, a dash per pooling)."""
    fig = new_figure(5, 3.2)
    ax = fig.subplots()
    for label, accuracy in curves.items():
        ax.plot(range(len(accuracy)), list(accuracy.values()), marker="o", label=label, **(styles or {}).get(label, {}))
    stages = list(next(iter(curves.values())))
    ax.set_xticks(range(len(stages)), stages)
    ax.set_xlabel("stage (input -> output)")
    ax.set_ylabel("linear probe top-1")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


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
    fig = new_figure(10, 4.2)
    ax1, ax2 = fig.subplots(1, 2)
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


def context_length_curves(lengths: Sequence[int], curves: dict[str, dict[str, list[float]]],
                          features: dict[str, float], chance: dict[str, float], path: Path) -> Path:
    """One panel per metric (``curves[metric][env]``: a value per context length, NaN where
    missing), one line per environment; the metric's no-context features baseline dashed and
    its chance level dotted where given."""
    cols = min(4, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig = new_figure(3.6 * cols, 3.0 * rows)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, (metric, by_env) in zip(axes, curves.items()):
        for env, values in by_env.items():
            ax.plot(lengths, values, marker="o", label=env)
        if metric in features:
            ax.axhline(features[metric], ls="--", c="grey", lw=1, label="features, no context")
        if metric in chance:
            ax.axhline(chance[metric], ls=":", c="k", lw=1, label="chance")
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("context length")
        ax.grid(alpha=0.3)
    for ax in axes[len(curves):]:
        ax.axis("off")
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def as_picture(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] -> an array to show in 0..1 (grey for one channel); images outside 0..1
    (standardised patches) are stretched to it."""
    image = image.detach().float()
    low, high = image.min(), image.max()
    if low < 0 or high > 1:
        image = (image - low) / (high - low).clamp_min(1e-8)
    return image[0].numpy() if image.shape[0] == 1 else image[:3].permute(1, 2, 0).numpy()


def view_grid(columns: Sequence[tuple[str, torch.Tensor, list[str] | None]], title: str, path: Path) -> Path:
    """A grid of pictures: one column per ``(title, images [N, C, h, w], captions per row or
    None)``, one row per sample."""
    rows = len(columns[0][1])
    fig = new_figure(max(1.3 * len(columns), 4.5), 1.4 * rows)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for c, (heading, images, captions) in enumerate(columns):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(as_picture(images[r]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heading, fontsize=7)
            if captions is not None:
                ax.set_xlabel(captions[r], fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=120)
