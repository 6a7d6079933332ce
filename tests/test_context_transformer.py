import pytest
import torch

from selfsup.models.context_transformer import (
    AuxiliaryPredictor,
    ContextTransformer,
    blind_fraction,
    expected_visible_pairs,
    interleave_pairs,
    pack_sequences,
    pair_mask,
    random_context_mask,
    unpack_sequences,
)
from selfsup.data.actions import ActionFactors, draw_environment


def _model(seed=0, mask_prob=0.0, block_size=16, state_dim=6, action_dim=3):
    torch.manual_seed(seed)
    return ContextTransformer(state_dim, action_dim, out_dim=5, width=16, depth=2, heads=4,
                              block_size=block_size, mask_prob=mask_prob).double()


def _tokens(n_pairs, seed=1, state_dim=6, action_dim=3):
    g = torch.Generator().manual_seed(seed)
    z, z_next = torch.randn(2, n_pairs, state_dim, generator=g, dtype=torch.float64)
    a = torch.randn(n_pairs, action_dim, generator=g, dtype=torch.float64)
    return interleave_pairs(z, z_next, a), z, z_next, a


def test_interleaving_puts_source_with_action_then_target_with_zero_action():
    tokens, z, z_next, a = _tokens(4)
    assert tokens.shape == (8, 9)
    for k in range(4):
        torch.testing.assert_close(tokens[2 * k], torch.cat([z[k], a[k]]))
        torch.testing.assert_close(tokens[2 * k + 1], torch.cat([z_next[k], torch.zeros(3, dtype=torch.float64)]))


def test_interleaving_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="states"):
        interleave_pairs(torch.randn(4, 3), torch.randn(5, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="actions"):
        interleave_pairs(torch.randn(4, 3), torch.randn(4, 3), torch.randn(3, 2))


def test_packing_pads_the_last_sequence_with_zeros_and_unpacks_back():
    tokens = torch.arange(10 * 3, dtype=torch.float32).view(10, 3) + 1
    packed = pack_sequences(tokens, 4)
    assert packed.shape == (3, 4, 3)
    assert (packed[2, 2:] == 0).all() and (packed[2, :2] == tokens[8:]).all()
    torch.testing.assert_close(unpack_sequences(packed, 10), tokens)


def test_pair_mask_is_causal_and_hides_each_targets_own_source():
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0, 1],
    ], dtype=torch.bool)
    assert torch.equal(pair_mask(6), expected)


def test_random_context_mask_drops_whole_pairs_and_keeps_the_diagonal():
    g = torch.Generator().manual_seed(0)
    keep = random_context_mask(64, 0.6, g)
    off_diagonal = ~torch.eye(64, dtype=torch.bool)
    # the two columns of a pair agree wherever neither is the diagonal
    pairs_agree = keep[:, 0::2] == keep[:, 1::2]
    rows, cols = torch.arange(64).view(-1, 1), torch.arange(0, 64, 2).view(1, -1)
    touches_diagonal = (rows == cols) | (rows == cols + 1)
    assert pairs_agree[~touches_diagonal].all()
    assert keep.diagonal().all()
    rate = keep[off_diagonal].float().mean().item()
    assert rate == pytest.approx(0.4, abs=0.03)
    assert torch.equal(keep, random_context_mask(64, 0.6, torch.Generator().manual_seed(0)))
    assert random_context_mask(8, 0.0).all()


def test_random_context_mask_rejects_odd_lengths():
    with pytest.raises(ValueError, match="even"):
        random_context_mask(5, 0.5)


def test_a_target_token_never_depends_on_its_own_source():
    model = _model().eval()
    tokens, *_ = _tokens(5)
    base = model(tokens.unsqueeze(0))[0]
    for k in range(5):
        changed = tokens.clone()
        changed[2 * k, :6] += torch.linspace(-3, 3, 6)  # another state in pair k's source token (not a shift:
        # the state standardisation would remove one)
        out = model(changed.unsqueeze(0))[0]
        torch.testing.assert_close(out[2 * k + 1], base[2 * k + 1])  # its target cannot see it
        torch.testing.assert_close(out[: 2 * k], base[: 2 * k])  # earlier tokens cannot either (causal)
        if k < 4:
            assert not torch.allclose(out[2 * k + 2], base[2 * k + 2])  # later pairs do see it


def test_training_mode_draws_the_random_mask_and_eval_mode_does_not():
    model = _model(mask_prob=0.5).train()
    tokens = _tokens(8)[0].unsqueeze(0)
    a = model(tokens, torch.Generator().manual_seed(1))
    b = model(tokens, torch.Generator().manual_seed(1))
    c = model(tokens, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    model.eval()
    torch.testing.assert_close(model(tokens, torch.Generator().manual_seed(1)),
                               model(tokens, torch.Generator().manual_seed(2)))


def monte_carlo_visible_pairs(mask_prob, block_size, draws=400, seed=0):
    """Slow reference: over draws of the real masks (pair mask & random context mask), the mean
    number of other pairs a target token (odd row) attends to, and the fraction that see none."""
    g = torch.Generator().manual_seed(seed)
    counts = []
    for _ in range(draws):
        mask = pair_mask(block_size) & random_context_mask(block_size, mask_prob, g)
        for row in range(1, block_size, 2):
            own = row // 2
            counts.append(sum(bool(mask[row, 2 * j]) and bool(mask[row, 2 * j + 1]) for j in range(block_size // 2)
                              if j != own))
    counts = torch.tensor(counts, dtype=torch.float64)
    return float(counts.mean()), float((counts == 0).double().mean()), float(counts.std() / len(counts) ** 0.5)


@pytest.mark.parametrize("mask_prob,block_size", [(0.9, 32), (0.9, 128), (0.5, 16), (0.0, 8)])
def test_expected_visible_pairs_matches_a_count_over_the_real_masks(mask_prob, block_size):
    mean, blind, error = monte_carlo_visible_pairs(mask_prob, block_size, draws=4000 // block_size)
    assert abs(expected_visible_pairs(mask_prob, block_size) - mean) < 4 * error + 1e-12
    assert abs(blind_fraction(mask_prob, block_size) - blind) < 0.03


def test_expected_visible_pairs_the_papers_pairing_and_the_old_recipe():
    assert expected_visible_pairs(0.9, 128) == pytest.approx(3.15)
    assert expected_visible_pairs(0.9, 32) == pytest.approx(0.75)
    assert blind_fraction(0.9, 32) == pytest.approx(0.509, abs=1e-3)
    assert expected_visible_pairs(0.9, 128, context_pairs=15) == pytest.approx(1.5)
    assert expected_visible_pairs(0.0, 32, context_pairs=15) == 15


def test_a_fully_masked_context_leaves_each_token_on_its_own():
    model = _model(mask_prob=0.999999).train()
    tokens = _tokens(6)[0]
    together = model(tokens.unsqueeze(0), torch.Generator().manual_seed(0))[0]
    alone = model.eval()(tokens.unsqueeze(1))[:, 0]  # every token a sequence of its own
    torch.testing.assert_close(together, alone)


@pytest.mark.parametrize("context_pairs", [0, 1, 3, 7])
def test_kv_cache_equals_a_full_forward_over_context_and_query(context_pairs):
    model = _model().eval()
    context, *_ = _tokens(context_pairs, seed=3)
    queries = torch.randn(5, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    queries[:, 6:] = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    cache = model.build_cache(context)
    assert cache.length == 2 * context_pairs
    cached = model.query(queries, cache)
    for i, q in enumerate(queries):
        full = model(torch.cat([context, q.unsqueeze(0)]).unsqueeze(0))[0, -1]
        torch.testing.assert_close(cached[i], full, atol=1e-10, rtol=0)


def test_queries_do_not_see_one_another():
    model = _model().eval()
    context, *_ = _tokens(4, seed=6)
    queries = torch.randn(3, 9, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    together = model.query(queries, model.build_cache(context))
    one = model.query(queries[1:2], model.build_cache(context))
    torch.testing.assert_close(together[1:2], one)


def test_without_positional_embedding_one_layer_reads_the_context_as_a_set_of_pairs():
    # deeper layers see order only through the causal mask (context tokens read earlier pairs)
    torch.manual_seed(0)
    model = ContextTransformer(6, 3, out_dim=5, width=16, depth=1, heads=4, block_size=16, mask_prob=0).double().eval()
    context, *_ = _tokens(4, seed=6)
    queries = torch.randn(3, 9, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    shuffled = context.view(4, 2, 9)[torch.tensor([3, 0, 2, 1])].reshape(8, 9)
    torch.testing.assert_close(model.query(queries, model.build_cache(shuffled)),
                               model.query(queries, model.build_cache(context)), atol=1e-10, rtol=0)


def test_constructor_and_inputs_are_validated():
    with pytest.raises(ValueError, match="divisible"):
        ContextTransformer(4, 2, 4, width=10, heads=4)
    with pytest.raises(ValueError, match="even"):
        ContextTransformer(4, 2, 4, block_size=7)
    with pytest.raises(ValueError, match="mask_prob"):
        ContextTransformer(4, 2, 4, mask_prob=1.0)
    model = _model(block_size=4)
    with pytest.raises(ValueError, match="block_size"):
        model(_tokens(3)[0].unsqueeze(0))
    with pytest.raises(ValueError, match="state_dim \\+ action_dim"):
        model(torch.randn(1, 2, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="whole pairs"):
        model.build_cache(_tokens(2)[0][:3])


def test_auxiliary_predictor_maps_to_the_parameter_count():
    head = AuxiliaryPredictor(8, 4, hidden_dim=16)
    assert head(torch.randn(5, 8)).shape == (5, 4)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())


def test_environments_zero_the_withheld_factors():
    factors = ActionFactors({"rot": (0, 2), "color": (2, 4)})
    a = torch.arange(1.0, 9.0).view(2, 4)
    assert torch.equal(factors.mask(a, "rot"), torch.tensor([[1.0, 2, 0, 0], [5, 6, 0, 0]]))
    assert torch.equal(factors.mask(a, "color"), torch.tensor([[0.0, 0, 3, 4], [0, 0, 7, 8]]))
    assert torch.equal(factors.mask(a, "rot+color"), a)
    assert torch.equal(factors.mask(a, "none"), torch.zeros(2, 4))
    assert factors.factors("color+rot") == ["color", "rot"]
    with pytest.raises(ValueError, match="unknown factors"):
        factors.mask(a, "scale")
    with pytest.raises(ValueError, match="columns"):
        factors.mask(a[:, :3], "rot")
    with pytest.raises(ValueError, match="tile"):
        ActionFactors({"rot": (0, 2), "color": (3, 4)})


def test_environments_are_drawn_with_the_configured_ratio():
    g = torch.Generator().manual_seed(0)
    draws = [draw_environment({"rot": 0.75, "color": 0.25, "rot+color": 0.0}, g) for _ in range(2000)]
    assert "rot+color" not in draws
    assert draws.count("rot") / len(draws) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="env_ratio"):
        draw_environment({"rot": 0.0})


def _action_effect(model, tokens) -> float:
    """How far the outputs move when every source token's action is replaced by another."""
    changed = tokens.clone()
    changed[0::2, 6:] = torch.randn(changed[0::2, 6:].shape, generator=torch.Generator().manual_seed(9),
                                    dtype=torch.float64)
    return (model(changed.unsqueeze(0)) - model(tokens.unsqueeze(0))).norm().item()


def test_the_state_standardisation_keeps_the_action_heard_at_any_feature_scale():
    tokens, *_ = _tokens(5)
    loud = tokens.clone()
    loud[:, :6] = loud[:, :6] * 1000 + 500  # a trained encoder's scale (convnet-small: feature norms in the 1,000s)
    model = _model().eval()
    model.state_norm = True
    # equal up to LayerNorm's eps (1e-5 against a unit and a 1,000 std)
    torch.testing.assert_close(model(loud.unsqueeze(0)), model(tokens.unsqueeze(0)), atol=1e-3, rtol=1e-3)
    assert _action_effect(model, loud) == pytest.approx(_action_effect(model, tokens), rel=1e-3)
    raw = _model().eval()  # the original's raw [z || a] (the default): the same weights, the state unscaled
    assert _action_effect(raw, loud) < 0.01 * _action_effect(model, loud)
