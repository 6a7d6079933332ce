"""What an evaluation measures without labels, on every run: collapse diagnostics, alignment and
uniformity, an uncoloured 2-D map of the test embeddings, and a nearest-neighbour retrieval sheet.

eval.json (the trained encoder bare, the random-init baseline prefixed ``random_init.``):
``unsupervised.effective_rank`` and ``unsupervised.embedding_std`` of the test features
(:mod:`selfsup.eval.diagnostics`), ``unsupervised.uniformity`` and ``unsupervised.alignment``
(:func:`uniformity`, :func:`alignment`), or ``skipped.alignment`` with the reason."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from selfsup.eval.context import EvalContext, key_prefix
from selfsup.eval.diagnostics import effective_rank, embedding_std
from selfsup.eval.features import as_float_inputs
from selfsup.eval.plots import embedding_map, view_grid
from selfsup.eval.registry import Evaluation

MAX_PAIRS_SAMPLES = 2048  # uniformity: pairwise distances of at most this many test features (seeded)
ALIGNMENT_SAMPLES = 256  # test inputs augmented twice for the alignment
QUERIES, NEIGHBOURS = 6, 5  # the retrieval sheet: query test images x their top-k bank neighbours


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log E_{i != j} exp(-t ||f_i - f_j||^2) over the pairs of L2-normalised rows of ``z`` [N, d]
    (Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and
    Uniformity on the Hypersphere", ICML 2020, eq. 2 with t = 2): -t * 4 ... 0, lower = more uniform."""
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"uniformity needs at least 2 embeddings [N, d], got {tuple(z.shape)}")
    f = F.normalize(z.double(), dim=1)
    sq = torch.pdist(f).pow(2)  # the N(N-1)/2 pairs i < j: the mean over i != j is the same
    return torch.logsumexp(-t * sq, dim=0) - torch.log(torch.tensor(float(sq.numel()), dtype=sq.dtype))


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """E_i ||f(x1_i) - f(x2_i)||^alpha over positive pairs of L2-normalised rows [N, d] (Wang &
    Isola, ICML 2020, eq. 1 with alpha = 2): 0 when both views embed alike, at most 2^alpha."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"alignment needs two embedding batches of one shape [N, d], got {tuple(z1.shape)}, {tuple(z2.shape)}")
    diff = F.normalize(z1.double(), dim=1) - F.normalize(z2.double(), dim=1)
    return diff.norm(dim=1).pow(alpha).mean()


def seeded_subset(n: int, count: int, seed: int) -> torch.Tensor:
    if n <= count:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def first_inputs(dataset, count: int) -> torch.Tensor:
    return as_float_inputs(dataset.load(torch.arange(min(count, len(dataset)))))


def two_views(ctx: EvalContext, x: torch.Tensor):
    """Two augmented views of ``x`` by the run's method, or (None, reason) when its views are not
    two image batches of the input's shape."""
    if ctx.method is None:
        return None, "no method to make views"
    g = torch.Generator().manual_seed(int(ctx.cfg.seed))
    views = ctx.method.make_views(x, g)
    if (isinstance(views, (list, tuple)) and len(views) >= 2
            and all(isinstance(v, torch.Tensor) and v.shape == x.shape for v in views[:2])):
        return (views[0], views[1]), None
    return None, f"{ctx.cfg.method.name}'s views are not two batches of the input's shape {tuple(x.shape[1:])}"


@torch.no_grad()
def encode(encoder, x: torch.Tensor, device, batch: int) -> torch.Tensor:
    encoder.eval().to(device)
    return torch.cat([encoder(x[i:i + batch].to(device)).float().flatten(1).cpu() for i in range(0, len(x), batch)])


def unsupervised(ctx: EvalContext) -> dict:
    seed, batch = int(ctx.cfg.seed), int(ctx.cfg.eval.batch_size)
    subjects = [s for s in ctx.subjects() if s in ctx.encoders]
    out: dict = {}
    for subject in subjects:
        z = ctx.features(subject).test_x
        prefix = f"{key_prefix(subject)}unsupervised."
        if len(z) < 2:
            out[f"skipped.{prefix}diagnostics"] = f"needs at least 2 test samples, found {len(z)}"
            continue
        out[prefix + "effective_rank"] = float(effective_rank(z))
        out[prefix + "embedding_std"] = float(embedding_std(z))
        out[prefix + "uniformity"] = float(uniformity(z[seeded_subset(len(z), MAX_PAIRS_SAMPLES, seed)]))
    x = first_inputs(ctx.test, ALIGNMENT_SAMPLES)
    views, reason = two_views(ctx, x) if len(x) >= 1 else (None, "no test samples")
    if views is None:
        out["skipped.alignment"] = reason
        return out
    for subject in subjects:
        encoder = ctx.encoders[subject]
        out[f"{key_prefix(subject)}unsupervised.alignment"] = float(
            alignment(encode(encoder, views[0], ctx.device, batch), encode(encoder, views[1], ctx.device, batch)))
    return out


def retrieval_sheet(ctx: EvalContext, path) -> str:
    """A few query test images (seeded) and their ``NEIGHBOURS`` cosine-nearest bank images by the
    trained encoder's features, one row per query; the path written, or "" for non-image data."""
    if ctx.splits.kind != "image" or len(ctx.test) < 1 or len(ctx.bank) < 1:
        return ""
    f = ctx.features("trained")
    queries = seeded_subset(len(ctx.test), QUERIES, int(ctx.cfg.seed))
    k = min(NEIGHBOURS, len(ctx.bank))
    sims = F.normalize(f.test_x[queries], dim=1) @ F.normalize(f.train_x, dim=1).T
    top_sims, top = sims.topk(k, dim=1)
    columns = [("query (test)", ctx.test.load(queries), None)]
    for j in range(k):
        columns.append((f"neighbour {j + 1}", ctx.bank.load(top[:, j]), [f"cos {s:.2f}" for s in top_sims[:, j].tolist()]))
    return str(view_grid(columns, f"{ctx.cfg.recipe}: nearest bank images of test queries", path))


def unsupervised_section(ctx: EvalContext, results: dict) -> str:
    keys = ("effective_rank", "embedding_std", "uniformity", "alignment")
    if not any(f"unsupervised.{k}" in results for k in keys) and not any(k.startswith("skipped.") for k in results):
        return ""
    lines = ["## Without labels", "",
             "Collapse diagnostics and uniformity of the test features, alignment of two augmented views of "
             "the test inputs (Wang & Isola, ICML 2020: uniformity log E exp(-2||f(x)-f(y)||²), lower is more "
             "uniform; alignment E||f(x₁)-f(x₂)||², lower is better aligned; features L2-normalised).", "",
             "| measure | trained | random-init |", "|---|---|---|"]
    for k in keys:
        cells = [results.get(f"{p}unsupervised.{k}") for p in ("", "random_init.")]
        lines.append(f"| {k.replace('_', ' ')} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")
    skipped = {k[len("skipped."):]: v for k, v in sorted(results.items()) if k.startswith("skipped.")}
    if skipped:
        lines += ["", "Skipped:", ""] + [f"- **{name}**: {reason}" for name, reason in skipped.items()]
    plots = ctx.run_dir / "plots"
    points = int(ctx.cfg.eval.map_points)
    if points > 0 and len(ctx.test) >= 10 and not bool((ctx.test.labels >= 0).any()):
        f = ctx.features("trained")
        pick = seeded_subset(len(f.test_x), points, int(ctx.cfg.seed))
        path = embedding_map(f.test_x[pick], None, [], plots / "embedding_map.png", int(ctx.cfg.seed),
                             title="t-SNE of test embeddings (unlabelled)")
        lines += ["", f"![t-SNE of unlabelled test embeddings]({os.path.relpath(path, ctx.run_dir)})"]
    sheet = retrieval_sheet(ctx, plots / "retrieval.png")
    if sheet:
        lines += ["", f"![nearest bank images of test queries]({os.path.relpath(sheet, ctx.run_dir)})"]
    return "\n".join(lines)


UNSUPERVISED = Evaluation(unsupervised, unsupervised_section)
