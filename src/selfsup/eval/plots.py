"""Figures of a run: training curves and a 2-D map of test embeddings."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
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


def plot_curves(series: dict, keys: list[str], title: str, path: Path) -> Path | None:
    present = [k for k in keys if series.get(k)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present):
        steps, values = zip(*sorted(series[key]))
        ax.plot(steps, values, lw=1)
        ax.set_xlabel("step")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def embedding_map(features: torch.Tensor, labels: torch.Tensor, names: list[str], path: Path,
                  seed: int = 0, title: str = "t-SNE of test embeddings") -> Path:
    """A t-SNE map (scikit-learn, PCA-initialised, seeded) of ``features`` coloured by label."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = features.float().numpy()
    x = PCA(n_components=min(50, x.shape[1], x.shape[0]), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(x) - 1) / 3)))
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6, 5))
    y = labels.numpy()
    for k in np.unique(y):
        name = names[k] if 0 <= k < len(names) else str(k)
        ax.scatter(xy[y == k, 0], xy[y == k, 1], s=4, label=name)
    ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return save_figure(fig, path)
