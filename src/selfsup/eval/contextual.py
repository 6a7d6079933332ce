"""Evaluation of contextual world models (ContextSSL, Gupta et al., NeurIPS 2024, sec. 5).

Everything is frozen. A context of c tokens (c/2 training pairs, their actions masked by the
environment ``env``: one factor given, or ``none``) is encoded once into a key/value cache; every
evaluated sample is then one query token [f(x) || 0] read after it, and its representation is
the normalised transformer output. At each context length c (``method.eval_contexts``) and env:

rotcolor-mnist (each held-out object's K recorded views):
- ``ctx<c>.<env>.r2``, ``.r2_rot``, ``.r2_color``: pooled R^2 (:func:`pooled_r2`) of probes from
  [r(view i) || r(view j)] to the action from i to j: nonlinear for the rotation columns, linear
  for the hue columns (the original's choice), fitted on pairs of training objects;
- ``ctx<c>.<env>.mrr``, ``.hit1``, ``.hit5``: for each object and view j, the query
  [f(view 0) || a_{0->j} masked by env] ranks the object's K views (each encoded as a query
  with action 0) by cosine similarity; the rank of view j (chance: MRR = H_K / K, Hit@k = k / K);
- ``ctx<c>.<env>.linear.top1``: a linear probe of the digit class on r of two views per object;
- ``ctx<c>.<env>.mrr_query_<q>``: the MRR split into the context's action and the query's
  (cross-environment MRR): the context's actions masked by ``env``, the query's by ``q``. A model
  whose retrieval comes from the query's own action alone gives one ``mrr_query_<q>`` for every
  context environment.
adult (each held-out row):
- ``ctx<c>.<env>.linear.top1`` (income), ``ctx<c>.<env>.sex.top1`` (the sensitive attribute) and
  ``ctx<c>.<env>.parity_gap``, the fairness of the income probe: its demographic parity gap
  |P(income = 1 | male) - P(income = 1 | female)| on the test rows;
- the yardsticks: ``floor.sex.top1``, the attribute predicted from the other columns (a
  sex-invariant representation can still score this, not 0.5: it is the floor invariance is
  judged against), and ``raw.*``, the same probes on the raw rows (the attribute column in).

Both worlds, the sensitivity to the context (normalised outputs, mean L2 distance over held-out
queries with zero action): ``sensitivity.ctx<c>.env_swap``, the change when the same context
pairs are shown under another environment (mean over pairs of environments), and
``sensitivity.ctx<c>.pair_swap``, the change when other context pairs are shown under the same
environment (mean over environments). A model that ignores the context's actions gives env_swap
0; one that reads the environment from them moves more under an environment swap than under a
pair swap.

Baselines on the encoder's features f with no context (``features.*``): the same R^2 probes on
[f(x) || f(x+)], the class and attribute probes on f; ``random_init.features.*`` the same for the
untrained encoder of the same architecture (with ``eval.baselines``), which shows what an
architecture encodes of each factor before any training. These are also the whole of the
``equivariance`` evaluation, for any encoder (e.g. the invariant SimCLR baseline).

Deviations from the original (documented): the probes are closed-form ridge regressions
(:class:`RidgeProbe`, ridge chosen on held-out objects; on 1,024 random ReLU features for
the rotation) instead of an MLP
1024-1024-1024-4 and a linear layer trained by Adam for 200 epochs; the pairs are a fixed number
per object; MRR is scored on held-out objects (Table 1's protocol) rather than on train.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from selfsup.augment.worlds import RotColorWorld, world_for
from selfsup.data.base import ArrayDataset, IndexedDataset
from selfsup.data.rotcolor import recorded_params, recorded_views, relative_action
from selfsup.eval.context import EvalContext, prefixed
from selfsup.eval.registry import Evaluation
from selfsup.eval.equivariance import RidgeProbe, pooled_r2
from selfsup.eval.features import extract_features
from selfsup.eval.linear import linear_probe, linear_probe_accuracy
from selfsup.eval.plots import context_length_curves
from selfsup.eval.retrieval import chance_mrr_and_hits, mrr_and_hits, true_ranks
from selfsup.models.context_transformer import ContextCache, ContextTransformer, interleave_pairs
from selfsup.data.actions import ActionFactors

PAIRS_PER_OBJECT = 4
CLASS_VIEWS = 2  # views per object for the class probe
ROT_PROBE_FEATURES = 1024  # random ReLU features of the nonlinear (rotation) probe
QUERY_CHUNK = 4096

Represent = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (features [M, F], actions [M, A]) -> [M, d]


def features_of(encoder, inputs: torch.Tensor, ctx: EvalContext) -> torch.Tensor:
    """Frozen encoder features of a tensor of inputs (uint8 images or float rows)."""
    dataset = ArrayDataset(inputs, torch.zeros(len(inputs), dtype=torch.long))
    return extract_features(encoder, dataset, int(ctx.cfg.eval.batch_size), ctx.device)[0]


def context_representation(transformer: ContextTransformer, factors: ActionFactors, cache: ContextCache,
                           env: str, mask_prob: float = 0.0, seed: int = 0) -> Represent:
    """Queries [f || action masked by env] read after the cached context, normalised. Identical
    queries (e.g. one view under every action when env withholds them all) are read once, so they
    get bit-identical representations wherever they sit in the batch. ``mask_prob`` > 0: the
    training's visibility (:meth:`ContextTransformer.query`), drawn afresh from ``seed`` on each call."""
    device = next(transformer.parameters()).device

    @torch.no_grad()
    def represent(features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        tokens, where = torch.unique(torch.cat([features, factors.mask(actions, env)], dim=1), dim=0,
                                     return_inverse=True)
        g = torch.Generator(device).manual_seed(seed) if mask_prob > 0 else None
        out = [transformer.query(chunk.to(device), cache, mask_prob, g) for chunk in tokens.split(QUERY_CHUNK)]
        return F.normalize(torch.cat(out), dim=1).cpu()[where]

    return represent


@dataclass
class ContextPairs:
    """The pairs a context is cut from: states z, z+ [P, F] and actions [P, A]."""

    z: torch.Tensor
    z_next: torch.Tensor
    actions: torch.Tensor

    def cache(self, transformer: ContextTransformer, factors: ActionFactors, env: str, length: int) -> ContextCache:
        return build_cache(transformer, factors, self.z, self.z_next, self.actions, env, length)


def context_sensitivity(transformer: ContextTransformer, factors: ActionFactors, envs: list[str],
                        queries: torch.Tensor, first: ContextPairs, second: ContextPairs,
                        length: int) -> dict[str, float]:
    """``env_swap`` and ``pair_swap`` at one context length (see the module's docstring):
    mean ||r - r'|| over the zero-action ``queries`` [Q, F]."""
    zeros = queries.new_zeros(len(queries), factors.dim)

    def outputs(pairs: ContextPairs, env: str) -> torch.Tensor:
        return context_representation(transformer, factors, pairs.cache(transformer, factors, env, length),
                                      env)(queries, zeros)

    def distance(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() - b.double()).norm(dim=1).mean())

    by_env = {env: outputs(first, env) for env in envs}
    env_pairs = [(a, b) for i, a in enumerate(envs) for b in envs[i + 1:]]
    env_swap = sum(distance(by_env[a], by_env[b]) for a, b in env_pairs) / max(len(env_pairs), 1)
    pair_swap = sum(distance(by_env[env], outputs(second, env)) for env in envs) / len(envs)
    return {"env_swap": env_swap, "pair_swap": pair_swap}


def features_only(features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return features


def build_cache(transformer: ContextTransformer, factors: ActionFactors, z: torch.Tensor, z_next: torch.Tensor,
                actions: torch.Tensor, env: str, length: int, mask_prob: float = 0.0, seed: int = 0) -> ContextCache:
    """The cache of the first length/2 context pairs, actions masked by env, under the pair mask
    (and with ``mask_prob`` > 0 the training's random context mask, drawn from ``seed``)."""
    device = next(transformer.parameters()).device
    pairs = length // 2
    tokens = interleave_pairs(z[:pairs], z_next[:pairs], factors.mask(actions[:pairs], env))
    g = torch.Generator(device).manual_seed(seed) if mask_prob > 0 else None
    with torch.no_grad():
        return transformer.build_cache(tokens.to(device), mask_prob, g)


# -- rotcolor-mnist -----------------------------------------------------------------------------
@dataclass
class RecordedObjects:
    """Features [n, K, F] of the K recorded views of each object, its view parameters ([n, K]
    each) and labels [n]."""

    features: torch.Tensor
    params: dict[str, torch.Tensor]
    labels: torch.Tensor

    @classmethod
    def encode(cls, encoder, dataset: IndexedDataset, ctx: EvalContext) -> "RecordedObjects":
        index = torch.arange(len(dataset))
        views = recorded_views(dataset, index)
        n, k = views.shape[:2]
        features = features_of(encoder, views.flatten(0, 1), ctx).view(n, k, -1)
        return cls(features, recorded_params(dataset, index), dataset.labels)

    def pairs(self, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``count`` seeded (object, view i, view j) triples per object, i != j."""
        n, k = self.features.shape[:2]
        g = torch.Generator().manual_seed(seed)
        obj = torch.arange(n).repeat_interleave(count)
        i = torch.randint(0, k, (len(obj),), generator=g)
        j = (i + torch.randint(1, k, (len(obj),), generator=g)) % k
        return obj, i, j

    def action(self, obj, i, j) -> torch.Tensor:
        p = self.params
        return relative_action({n: v[obj, i] for n, v in p.items()}, {n: v[obj, j] for n, v in p.items()})


def retrieval_scores(queries: torch.Tensor, candidates: torch.Tensor, j: torch.Tensor) -> dict[str, float]:
    """MRR / Hit@k of each object's view j among its candidates: queries [n, K, d], candidates [n, K, d]."""
    # float64: near-collinear candidates would tie at float32 resolution, and ties count against the truth
    scores = torch.einsum("nqd,ncd->nqc", queries.double(), candidates.double())
    return mrr_and_hits(true_ranks(scores.flatten(0, 1), j))


def rotcolor_metrics(represent: Represent, bank: RecordedObjects, test: RecordedObjects, factors: ActionFactors,
                     seed: int, retrieval: bool, query_represent: dict[str, Represent] | None = None
                     ) -> dict[str, float]:
    """The metrics of one context and environment; ``query_represent``: query environment ->
    the representation under the same context with the query's action masked by that
    environment, for ``mrr_query_<env>``."""
    def reps(objects: RecordedObjects) -> torch.Tensor:
        n, k, f = objects.features.shape
        flat = objects.features.flatten(0, 1)
        return represent(flat, flat.new_zeros(len(flat), factors.dim)).view(n, k, -1)

    r_bank, r_test = reps(bank), reps(test)
    out: dict[str, float] = {}
    data = {}
    for name, objects, r, s in (("bank", bank, r_bank, seed), ("test", test, r_test, seed + 1)):
        obj, i, j = objects.pairs(PAIRS_PER_OBJECT, s)
        data[name] = (torch.cat([r[obj, i], r[obj, j]], dim=1), objects.action(obj, i, j))
    (x_bank, y_bank), (x_test, y_test) = data["bank"], data["test"]
    prediction = torch.zeros_like(y_test)
    for factor, (a, b) in factors.columns.items():
        probe = RidgeProbe(x_bank, y_bank[:, a:b], ROT_PROBE_FEATURES if factor == "rot" else 0, seed=seed)
        prediction[:, a:b] = probe(x_test)
        out[f"r2_{factor}"] = pooled_r2(y_test[:, a:b], prediction[:, a:b])
    out["r2"] = pooled_r2(y_test, prediction)
    k = CLASS_VIEWS
    out["linear.top1"] = linear_probe_accuracy(r_bank[:, :k].flatten(0, 1), bank.labels.repeat_interleave(k),
                                               r_test[:, :k].flatten(0, 1), test.labels.repeat_interleave(k))
    if retrieval:
        n, views = test.features.shape[:2]
        obj = torch.arange(n).repeat_interleave(views)
        j = torch.arange(views).repeat(n)
        sources, actions = test.features[obj, 0], test.action(obj, torch.zeros_like(j), j)
        out.update(retrieval_scores(represent(sources, actions).view(n, views, -1), r_test, j))
        for env, query in (query_represent or {}).items():
            queries = query(sources, actions).view(n, views, -1)
            out[f"mrr_query_{env}"] = retrieval_scores(queries, r_test, j)["mrr"]
    return out


def rotcolor_evaluation(ctx: EvalContext, world: RotColorWorld, transformer: ContextTransformer | None,
                        contexts: list[int]) -> dict[str, float]:
    seed = int(ctx.cfg.seed)

    def encoded(encoder) -> tuple[RecordedObjects, RecordedObjects]:
        return RecordedObjects.encode(encoder, ctx.bank, ctx), RecordedObjects.encode(encoder, ctx.test, ctx)

    def features_metrics(bank: RecordedObjects, test: RecordedObjects) -> dict[str, float]:
        return rotcolor_metrics(features_only, bank, test, world.factors, seed, retrieval=False)

    results = {}
    if "random_init" in ctx.encoders:
        results.update(prefixed("random_init.features.", features_metrics(*encoded(ctx.encoders["random_init"]))))
    bank, test = encoded(ctx.encoders["trained"])
    results.update(prefixed("features.", features_metrics(bank, test)))
    if transformer is None:
        return results
    first, second = (context_pairs(bank, seed + s) for s in (2, 5))
    envs = list(world.eval_envs)
    for c in contexts:
        for env in envs:
            cache = first.cache(transformer, world.factors, env, c)
            split = {q: context_representation(transformer, world.factors, cache, q) for q in envs}
            metrics = rotcolor_metrics(split[env], bank, test, world.factors, seed, retrieval=True,
                                       query_represent=split)
            results.update({f"ctx{c}.{env}.{k}": v for k, v in metrics.items()})
        sensitivity = context_sensitivity(transformer, world.factors, envs, test.features[:, 0], first, second, c)
        results.update({f"sensitivity.ctx{c}.{k}": v for k, v in sensitivity.items()})
    return results


def context_pairs(bank: RecordedObjects, seed: int) -> ContextPairs:
    """One seeded pair of views per bank object, in a seeded order: the pairs contexts are cut from."""
    obj, i, j = bank.pairs(1, seed)
    order = torch.randperm(len(obj), generator=torch.Generator().manual_seed(seed + 1))
    obj, i, j = obj[order], i[order], j[order]
    return ContextPairs(bank.features[obj, i], bank.features[obj, j], bank.action(obj, i, j))


# -- adult (a sensitive attribute) ----------------------------------------------------------------
def parity_gap(predictions: torch.Tensor, attribute: torch.Tensor) -> float:
    """Demographic parity gap of binary predictions y_hat in {0, 1} between the two groups of a
    binary attribute s: |P(y_hat = 1 | s = 1) - P(y_hat = 1 | s = 0)| (0: parity; a group with no
    rows counts as rate 0)."""
    positive, group = predictions.long() == 1, attribute.long() == 1
    rates = [positive[g].double().mean().item() if g.any() else 0.0 for g in (group, ~group)]
    return abs(rates[0] - rates[1])


def sensitive_evaluation(ctx: EvalContext, world, transformer: ContextTransformer | None,
                         contexts: list[int]) -> dict[str, float]:
    seed, attribute = int(ctx.cfg.seed), world.attribute
    x_bank, x_test = (d.load(torch.arange(len(d))) for d in (ctx.bank, ctx.test))
    y = {"linear": (ctx.bank.labels, ctx.test.labels),
         attribute: (ctx.bank.targets[attribute].long(), ctx.test.targets[attribute].long())}
    s_test = y[attribute][1]

    def probes(r_bank: torch.Tensor, r_test: torch.Tensor) -> dict[str, float]:
        income = linear_probe(r_bank, y["linear"][0], r_test, y["linear"][1])
        return {"linear.top1": income.accuracy, "parity_gap": parity_gap(income.predictions, s_test),
                f"{attribute}.top1": attribute_accuracy(r_bank, r_test)}

    def attribute_accuracy(r_bank: torch.Tensor, r_test: torch.Tensor) -> float:
        a, b = y[attribute]
        return linear_probe_accuracy(r_bank, a, r_test, b)

    # the floor: how well the other columns predict the attribute (an attribute-invariant
    # representation of the same rows can still score this much)
    others = [i for i in range(x_bank.shape[1]) if i != world.column]
    results = {f"floor.{attribute}.top1": attribute_accuracy(x_bank[:, others], x_test[:, others])}
    results.update(prefixed("raw.", probes(x_bank, x_test)))
    if "random_init" in ctx.encoders:
        untrained = ctx.encoders["random_init"]
        results[f"random_init.features.{attribute}.top1"] = attribute_accuracy(
            features_of(untrained, x_bank, ctx), features_of(untrained, x_test, ctx))
    encoder = ctx.encoders["trained"]
    f_bank, f_test = features_of(encoder, x_bank, ctx), features_of(encoder, x_test, ctx)
    results.update(prefixed("features.", probes(f_bank, f_test)))
    if transformer is None:
        return results
    count = min(len(x_bank), max(contexts) // 2)

    def draw(s: int) -> ContextPairs:
        pick = torch.randperm(len(x_bank), generator=torch.Generator().manual_seed(s))[:count]
        pairs = world.pairs(x_bank[pick], torch.Generator().manual_seed(s + 1))
        return ContextPairs(features_of(encoder, pairs.first, ctx), features_of(encoder, pairs.second, ctx), pairs.action)

    first, second = draw(seed + 3), draw(seed + 5)
    envs = list(world.eval_envs)
    for c in contexts:
        for env in envs:
            represent = context_representation(transformer, world.factors, first.cache(transformer, world.factors, env, c), env)
            zeros = f_bank.new_zeros(1, world.factors.dim)
            metrics = probes(represent(f_bank, zeros.expand(len(f_bank), -1)), represent(f_test, zeros.expand(len(f_test), -1)))
            results.update({f"ctx{c}.{env}.{k}": v for k, v in metrics.items()})
        sensitivity = context_sensitivity(transformer, world.factors, envs, f_test, first, second, c)
        results.update({f"sensitivity.ctx{c}.{k}": v for k, v in sensitivity.items()})
    return results


def evaluate_world(ctx: EvalContext, transformer: ContextTransformer | None, contexts: list[int]) -> dict:
    world = world_for(ctx.splits.info)
    if transformer is not None:
        transformer.eval().to(ctx.device)
    run = rotcolor_evaluation if isinstance(world, RotColorWorld) else sensitive_evaluation
    return run(ctx, world, transformer, contexts)


def equivariance(ctx: EvalContext) -> dict:
    """``features.*``: R^2 of the relative transformation from pairs of encoder features and
    the class (rotcolor-mnist) or sensitive-attribute (adult) probe, for any encoder."""
    return evaluate_world(ctx, None, [])


def contextssl(ctx: EvalContext) -> dict:
    """``features.*`` and, at each context length and environment, ``ctx<c>.<env>.*`` (see
    the module's docstring). Needs the trained method (``ctx.method``) with its transformer."""
    method = ctx.method
    if method is None or not hasattr(method, "transformer"):
        raise ValueError("the contextssl evaluation needs a run trained with method.name=contextssl")
    return evaluate_world(ctx, method.transformer, list(method.params.eval_contexts))


# -- report ---------------------------------------------------------------------------------------
def context_curves(ctx: EvalContext, results: dict) -> str:
    """report.md: each ctx metric against the context length, one line per environment, the
    features baseline (dashed) and chance (dotted) where they apply."""
    keys = [k.split(".", 2) for k in results if k.startswith("ctx")]
    if not keys:
        return ""
    metrics = sorted({m for _, _, m in keys}, key=lambda m: (not m.startswith("r2"), not m.startswith("mrr"), m))
    envs = sorted({e for _, e, _ in keys})
    lengths = sorted({int(c[3:]) for c, _, _ in keys})
    views = ctx.splits.info.get("views_per_object")
    chance = chance_mrr_and_hits(views) if views else {}
    curves = {m: {e: [results.get(f"ctx{c}.{e}.{m}", float("nan")) for c in lengths] for e in envs} for m in metrics}
    features = {m: results[f"features.{m}"] for m in metrics if f"features.{m}" in results}
    path = context_length_curves(lengths, curves, features, chance, ctx.run_dir / "plots" / "contexts.png")
    header = "| metric | env | " + " | ".join(f"c={c}" for c in lengths) + " |"
    lines = ["## Context length", "", f"![metrics against context length]({os.path.relpath(path, ctx.run_dir)})", "",
             header, "|---|---|" + "---|" * len(lengths)]
    for metric in metrics:
        for env in envs:
            cells = [results.get(f"ctx{c}.{env}.{metric}") for c in lengths]
            lines.append(f"| {metric} | {env} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    if chance:
        lines += ["", "Chance with " + f"{views} candidates: " + ", ".join(f"{k} {v:.3f}" for k, v in chance.items())]
    return "\n".join(lines + sensitivity_table(results, lengths))


def sensitivity_table(results: dict, lengths: list[int]) -> list[str]:
    """report.md lines: the output change under an environment swap and under a pair swap."""
    rows = [c for c in lengths if f"sensitivity.ctx{c}.env_swap" in results]
    if not rows:
        return []
    lines = ["", "### Sensitivity to the context", "",
             "Mean L2 distance of the normalised query outputs when the same context pairs are shown under another "
             "environment (env swap) and when other pairs are shown under the same environment (pair swap). "
             "A model that reads the environment from the context moves more under an env swap.", "",
             "| context | env swap | pair swap |", "|---|---|---|"]
    for c in rows:
        lines.append(f"| {c} | {results[f'sensitivity.ctx{c}.env_swap']:.4f} | "
                     f"{results[f'sensitivity.ctx{c}.pair_swap']:.4f} |")
    return lines


EQUIVARIANCE = Evaluation(equivariance)
CONTEXTSSL = Evaluation(contextssl, report=context_curves)
