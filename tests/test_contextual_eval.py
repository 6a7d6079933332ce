import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from selfsup.data.rotcolor import ACTION_FACTORS, draw_view_params
from selfsup.eval.contextual import (
    ContextPairs,
    RecordedObjects,
    build_cache,
    context_curves,
    context_representation,
    context_sensitivity,
    parity_gap,
    rotcolor_metrics,
    sensitive_evaluation,
)
from selfsup.data.base import ArrayDataset
from selfsup.eval.equivariance import RidgeProbe, pooled_r2
from selfsup.eval.retrieval import chance_mrr_and_hits, mrr_and_hits, true_ranks
from selfsup.models.context_transformer import ContextTransformer, interleave_pairs
from selfsup.data.actions import ActionFactors

FACTORS = ActionFactors(ACTION_FACTORS)


def slow_pooled_r2(y, y_hat) -> float:
    values = [float(v) for v in y.flatten()]
    mean = sum(values) / len(values)
    residual = sum((float(a) - float(b)) ** 2 for a, b in zip(y.flatten(), y_hat.flatten()))
    return 1 - residual / sum((v - mean) ** 2 for v in values)


@pytest.mark.parametrize("shape", [(5, 1), (20, 4), (7, 3)])
def test_pooled_r2_matches_slow_reference(shape):
    g = torch.Generator().manual_seed(shape[0])
    y = torch.randn(shape, generator=g) + torch.arange(shape[1])
    y_hat = y + 0.5 * torch.randn(shape, generator=g)
    assert pooled_r2(y, y_hat) == pytest.approx(slow_pooled_r2(y, y_hat), abs=1e-9)
    assert pooled_r2(y, y) == 1.0
    assert pooled_r2(y, torch.full_like(y, float(y.mean()))) == pytest.approx(0.0, abs=1e-9)


def test_pooled_r2_rewards_column_means_unlike_the_per_column_average():
    # predicting each column's own mean: 0 per column, but the pooled mean is one scalar
    y = torch.tensor([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    column_means = y.mean(0, keepdim=True).expand_as(y)
    assert pooled_r2(y, column_means) > 0.9


def test_ridge_probe_matches_the_normal_equations_and_random_features_fit_products():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(512, 4, generator=g, dtype=torch.float64) * 2 - 1
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]], dtype=torch.float64) + 3
    probe = RidgeProbe(x, y, ridges=[1e-3])
    z = torch.cat([(x - x.mean(0)) / x.std(0), torch.ones(512, 1, dtype=torch.float64)], dim=1)
    beta = torch.linalg.solve(z.T @ z + 1e-3 * 512 * torch.eye(5, dtype=torch.float64), z.T @ y)
    torch.testing.assert_close(probe(x).double(), (z @ beta), atol=1e-5, rtol=0)
    assert pooled_r2(y, probe(x)) > 0.99
    product = x[:, :1] * x[:, 1:2]
    test = torch.rand(512, 4, generator=g, dtype=torch.float64) * 2 - 1
    assert pooled_r2(test[:, :1] * test[:, 1:2], RidgeProbe(x, product)(test)) < 0.1
    assert pooled_r2(test[:, :1] * test[:, 1:2], RidgeProbe(x, product, random_features=1024)(test)) > 0.9
    with pytest.raises(ValueError, match="same N"):
        RidgeProbe(x, y[:10])


def test_ridge_probe_picks_its_ridge_on_held_out_rows_and_ignores_constant_columns():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 50, generator=g, dtype=torch.float64)
    y = x[:, :1] + 2.0 * torch.randn(200, 1, generator=g, dtype=torch.float64)  # noisy: wants a strong ridge
    assert RidgeProbe(x, y).ridge > RidgeProbe(x, x[:, :1]).ridge
    x[:, 7] = 1.0  # constant on the training rows
    probe = RidgeProbe(x, x[:, :1])
    shifted = x.clone()
    shifted[:, 7] = 1e6  # anything on new rows
    torch.testing.assert_close(probe(shifted), probe(x))


def test_ranks_count_ties_against_the_right_candidate_and_match_a_loop():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.2, 0.1], [0.0, 0.3, 0.7]])
    truth = torch.tensor([0, 1, 0])
    assert true_ranks(scores, truth).tolist() == [1, 2, 3]
    g = torch.Generator().manual_seed(0)
    scores, truth = torch.randn(50, 20, generator=g), torch.randint(0, 20, (50,), generator=g)
    ranks = true_ranks(scores, truth)
    slow = [1 + sum(1 for c in range(20) if c != t and scores[q, c] >= scores[q, t]) for q, t in enumerate(truth.tolist())]
    assert ranks.tolist() == slow
    got = mrr_and_hits(ranks)
    assert got["mrr"] == pytest.approx(sum(1 / r for r in slow) / 50)
    assert got["hit1"] == pytest.approx(sum(r == 1 for r in slow) / 50)
    assert got["hit5"] == pytest.approx(sum(r <= 5 for r in slow) / 50)


def test_chance_levels():
    chance = chance_mrr_and_hits(20)
    assert chance["mrr"] == pytest.approx(sum(1 / k for k in range(1, 21)) / 20)
    assert chance["mrr"] == pytest.approx(0.1799, abs=1e-4)
    assert chance["hit1"] == 0.05 and chance["hit5"] == 0.25


def oracle_objects(n: int, k: int, seed: int) -> RecordedObjects:
    """Features that are the views' parameters themselves [cos t, sin t, h_f, h_b] + class one-hot."""
    params = draw_view_params((n, k), torch.Generator().manual_seed(seed))
    labels = torch.arange(n) % 3
    state = torch.stack([torch.cos(params["theta"]), torch.sin(params["theta"]), params["digit_hue"],
                         params["background_hue"]], dim=-1)
    onehot = torch.nn.functional.one_hot(labels, 3).float().unsqueeze(1).expand(n, k, 3)
    return RecordedObjects(torch.cat([state, onehot], dim=-1), params, labels)


def apply_action(features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A perfect world model on oracle features: rotate and shift hues (zero action = stay),
    normalised as the context representation is."""
    c, s = features[:, 0], features[:, 1]
    ca, sa = actions[:, 0], actions[:, 1]
    moved = torch.stack([c * ca - s * sa, s * ca + c * sa, features[:, 2] + actions[:, 2],
                         features[:, 3] + actions[:, 3]], dim=1)
    stay = (actions == 0).all(1, keepdim=True)
    return torch.nn.functional.normalize(torch.where(stay, features[:, :4], moved), dim=1)


def test_oracle_features_give_high_r2_and_perfect_retrieval():
    bank, test = oracle_objects(60, 6, 0), oracle_objects(40, 6, 1)
    out = rotcolor_metrics(apply_action, bank, test, FACTORS, seed=0, retrieval=True)
    assert out["r2_color"] > 0.95 and out["r2_rot"] > 0.8 and out["r2"] > 0.8  # misaligned pairs: about 0
    assert out["mrr"] == 1.0 and out["hit1"] == 1.0
    features = rotcolor_metrics(lambda f, a: f, bank, test, FACTORS, seed=0, retrieval=False)
    assert features["linear.top1"] == 1.0 and "mrr" not in features


def test_withholding_every_action_makes_retrieval_exactly_chance():
    torch.manual_seed(0)
    transformer = ContextTransformer(7, 4, 7, width=16, depth=1, heads=2, block_size=8, mask_prob=0).eval()
    bank, test = oracle_objects(20, 5, 0), oracle_objects(20, 5, 1)
    z, z_next = bank.features[:, 0], bank.features[:, 1]
    actions = bank.action(torch.arange(20), torch.zeros(20, dtype=torch.long), torch.ones(20, dtype=torch.long))
    cache = build_cache(transformer, FACTORS, z, z_next, actions, "none", 6)
    assert cache.length == 6
    out = rotcolor_metrics(context_representation(transformer, FACTORS, cache, "none"), bank, test, FACTORS,
                           seed=0, retrieval=True)
    assert out["mrr"] == pytest.approx(chance_mrr_and_hits(5)["mrr"], abs=1e-12)
    assert out["hit1"] == pytest.approx(0.2) and out["hit5"] == 1.0


def test_report_section_plots_each_metric_against_context_length(tmp_path: Path):
    results = {f"ctx{c}.{env}.{m}": 0.1 * c + i for c in (0, 2, 6) for i, env in enumerate(("rot", "none"))
               for m in ("r2_rot", "mrr")}
    results["features.r2_rot"] = 0.3
    ctx = SimpleNamespace(run_dir=tmp_path, splits=SimpleNamespace(info={"views_per_object": 20}))
    text = context_curves(ctx, results)
    assert (tmp_path / "plots" / "contexts.png").stat().st_size > 1000
    assert "| mrr | rot | 0.000 | 0.200 | 0.600 |" in text and "mrr 0.180" in text
    assert context_curves(ctx, {"knn.top1": 0.5}) == ""
    assert math.isfinite(results["features.r2_rot"])


ENVS = ["rot", "color", "none"]


def sensitivity_fixture(seed=0):
    torch.manual_seed(seed)
    transformer = ContextTransformer(7, 4, 7, width=16, depth=2, heads=2, block_size=16, mask_prob=0).eval()
    bank = oracle_objects(20, 5, 0)
    k = torch.arange(20)
    first = ContextPairs(bank.features[:, 0], bank.features[:, 1], bank.action(k, 0 * k, 0 * k + 1))
    second = ContextPairs(bank.features[:, 2], bank.features[:, 3], bank.action(k, 0 * k + 2, 0 * k + 3))
    queries = oracle_objects(12, 2, 1).features[:, 0]
    return transformer, first, second, queries


def slow_sensitivity(transformer, first, second, queries, length):
    """Reference: each query read on its own after a full forward over [context || query]."""
    def output(pairs, env, q):
        context = interleave_pairs(pairs.z[:length // 2], pairs.z_next[:length // 2],
                                   FACTORS.mask(pairs.actions[:length // 2], env))
        tokens = torch.cat([context, torch.cat([q, torch.zeros(4)]).unsqueeze(0)]).unsqueeze(0)
        with torch.no_grad():
            return torch.nn.functional.normalize(transformer(tokens)[0, -1], dim=0)

    def mean_distance(a_pairs, a_env, b_pairs, b_env):
        return sum(float((output(a_pairs, a_env, q) - output(b_pairs, b_env, q)).norm()) for q in queries) / len(queries)

    env_pairs = [("rot", "color"), ("rot", "none"), ("color", "none")]
    return {"env_swap": sum(mean_distance(first, a, first, b) for a, b in env_pairs) / 3,
            "pair_swap": sum(mean_distance(first, e, second, e) for e in ENVS) / 3}


@pytest.mark.parametrize("length", [0, 2, 6, 14])
def test_context_sensitivity_matches_a_full_forward_per_query(length):
    transformer, first, second, queries = sensitivity_fixture()
    got = context_sensitivity(transformer, FACTORS, ENVS, queries, first, second, length)
    want = slow_sensitivity(transformer, first, second, queries, length)
    assert got == pytest.approx(want, abs=1e-5)
    if length == 0:
        assert got == {"env_swap": 0.0, "pair_swap": 0.0}
    else:
        assert got["env_swap"] > 1e-3 and got["pair_swap"] > 1e-3


def test_a_model_blind_to_the_contexts_actions_gives_environment_swap_zero():
    transformer, first, second, queries = sensitivity_fixture()
    with torch.no_grad():
        transformer.embed.weight[:, 7:] = 0  # actions never reach the model: the environment cannot
    got = context_sensitivity(transformer, FACTORS, ENVS, queries, first, second, 14)
    assert got["env_swap"] == 0.0
    assert got["pair_swap"] > 1e-3  # other pairs still move it


class QueryOnly(torch.nn.Module):
    """A world model that reads only the query (the oracle's action applied to its features)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def build_cache(self, tokens, mask_prob=0.0, generator=None):
        return tokens

    def query(self, tokens, cache, mask_prob=0.0, generator=None):
        return apply_action(tokens[:, :7], tokens[:, 7:])


def test_cross_environment_mrr_is_the_queries_alone_when_the_context_is_ignored():
    model = QueryOnly()
    bank, test = oracle_objects(30, 5, 0), oracle_objects(30, 5, 1)
    z, z_next = bank.features[:, 0], bank.features[:, 1]
    actions = bank.action(torch.arange(30), torch.zeros(30, dtype=torch.long), torch.ones(30, dtype=torch.long))
    by_context = {}
    for env in ENVS:
        cache = build_cache(model, FACTORS, z, z_next, actions, env, 6)
        split = {q: context_representation(model, FACTORS, cache, q) for q in ENVS}
        by_context[env] = rotcolor_metrics(split[env], bank, test, FACTORS, seed=0, retrieval=True, query_represent=split)
    for env, metrics in by_context.items():
        assert metrics[f"mrr_query_{env}"] == metrics["mrr"]  # the diagonal is the plain MRR
    for q in ENVS:
        assert len({metrics[f"mrr_query_{q}"] for metrics in by_context.values()}) == 1  # one value per query env
    assert by_context["rot"]["mrr_query_rot"] > by_context["rot"]["mrr_query_none"]


def test_report_has_the_sensitivity_table(tmp_path: Path):
    results = {f"ctx{c}.rot.mrr": 0.2 for c in (0, 2)}
    results.update({"sensitivity.ctx0.env_swap": 0.0, "sensitivity.ctx0.pair_swap": 0.0,
                    "sensitivity.ctx2.env_swap": 0.03, "sensitivity.ctx2.pair_swap": 0.25})
    ctx = SimpleNamespace(run_dir=tmp_path, splits=SimpleNamespace(info={}))
    text = context_curves(ctx, results)
    assert "### Sensitivity to the context" in text and "| 2 | 0.0300 | 0.2500 |" in text


def slow_parity_gap(predictions, attribute) -> float:
    groups = {0: [], 1: []}
    for p, s in zip(predictions.tolist(), attribute.tolist()):
        groups[int(s)].append(1.0 if int(p) == 1 else 0.0)
    rate = {g: (sum(v) / len(v) if v else 0.0) for g, v in groups.items()}
    return abs(rate[1] - rate[0])


def test_parity_gap_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    predictions, attribute = torch.randint(0, 2, (301,), generator=g), torch.randint(0, 2, (301,), generator=g)
    assert parity_gap(predictions, attribute) == pytest.approx(slow_parity_gap(predictions, attribute), abs=1e-12)
    assert parity_gap(attribute, attribute) == 1.0 and parity_gap(torch.ones(6), attribute[:6]) == 0.0


def sensitive_world_context(proxy: bool) -> tuple[SimpleNamespace, SimpleNamespace]:
    """Rows [sex, proxy-or-noise, noise, ...] whose income is the noise column's sign; the
    identity as the trained encoder."""
    g = torch.Generator().manual_seed(1)

    def rows(n: int) -> ArrayDataset:
        sex = torch.randint(0, 2, (n,), generator=g).float()
        x = torch.randn(n, 4, generator=g)
        x[:, 0] = sex
        if proxy:
            x[:, 1] = sex + 0.05 * torch.randn(n, generator=g)
        income = (x[:, 2] + 2 * sex - 1 > 0).long()  # income depends on sex: a fair probe needs the gap
        return ArrayDataset(x, income, {"sex": sex})

    ctx = SimpleNamespace(cfg=SimpleNamespace(seed=0, eval=SimpleNamespace(batch_size=256)), bank=rows(600),
                          test=rows(400), encoders={"trained": torch.nn.Identity()}, device="cpu")
    world = SimpleNamespace(attribute="sex", column=0)
    return ctx, world


@pytest.mark.parametrize("proxy", [False, True])
def test_adult_floor_is_the_attribute_from_the_other_columns(proxy):
    ctx, world = sensitive_world_context(proxy)
    results = sensitive_evaluation(ctx, world, None, [0])
    # with the sex column itself in, the attribute is read perfectly; the floor leaves it out
    assert results["raw.sex.top1"] == 1.0 and results["features.sex.top1"] == 1.0
    if proxy:
        assert results["floor.sex.top1"] > 0.98
    else:
        assert 0.4 < results["floor.sex.top1"] < 0.6
    # the income probe follows sex, so its parity gap is large, as the data's own gap
    assert results["raw.parity_gap"] == pytest.approx(slow_parity_gap(ctx.test.labels, ctx.test.targets["sex"]), abs=0.1)
    assert results["raw.parity_gap"] > 0.4
