import pytest
import torch

from selfsup.augment.tabular import corrupt_features
from selfsup.augment.worlds import RotColorWorld, SensitiveAttributeWorld, world_for
from selfsup.config.schema import AugmentConfig, ModelConfig
from selfsup.data.rotcolor import ACTION_FACTORS, absolute_params, draw_view_params, relative_action, render
from selfsup.methods import MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder

SMALL = {"width": 32, "depth": 1, "heads": 2, "block_size": 8, "aux_hidden_dim": 16, "eval_contexts": [0, 2, 6]}
ROTCOLOR_INFO = {"views_per_object": 20, "action_factors": ACTION_FACTORS}
# a table: 3 numbers, a 3-way one-hot field, the sensitive column
TABLE_INFO = {"feature_groups": [[0, 1], [1, 2], [2, 3], [3, 6], [6, 7]], "sensitive_column": 6, "sensitive": "sex"}


def table(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    numbers = torch.randn(n, 3, generator=g)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
    sex = torch.randint(0, 2, (n, 1), generator=g).float()
    return torch.cat([numbers, onehot, sex], dim=1)


def build(name: str, info: dict, spec: InputSpec, num_classes: int = 10, **params):
    cls, p = resolve_method_params({"name": name, **params})
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(encoder="convnet-small" if spec.kind == "image" else "mlp", width=4,
                                        channels_last=False), spec, [0.5] * spec.in_channels, [0.25] * spec.in_channels)
    return cls(p, encoder, MethodContext(spec, num_classes, AugmentConfig(), info))


IMAGE = InputSpec(3, (3, 32, 32), "image")
TABULAR = InputSpec(7, (7,), "tabular")


def digits(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    canvas = torch.zeros(n, 3, 32, 32)
    canvas[:, :, 10:22, 13:19] = torch.rand(n, 1, 1, 1, generator=g)  # a bar of random brightness
    return canvas


def test_corruption_moves_whole_fields_from_other_rows_at_the_rate():
    x = table(400)
    g = torch.Generator().manual_seed(0)
    out = corrupt_features(x, TABLE_INFO["feature_groups"][:4], 0.6, g)
    assert torch.equal(out[:, 6], x[:, 6])  # the column in no group never changes
    torch.testing.assert_close(out[:, 3:6].sum(1), torch.ones(400))  # a one-hot field stays one-hot
    for col in range(3):  # every value comes from the same column of some row
        assert torch.isin(out[:, col], x[:, col]).all()
    changed = (out[:, :3] != x[:, :3]).float().mean().item()
    assert changed == pytest.approx(0.6 * (1 - 1 / 400), abs=0.05)
    assert torch.equal(corrupt_features(x, TABLE_INFO["feature_groups"], 0.0, g), x)
    with pytest.raises(ValueError, match="rate"):
        corrupt_features(x, [], 1.5, g)


def test_rotcolor_world_renders_with_the_actions_it_reports():
    world = world_for(ROTCOLOR_INFO)
    assert isinstance(world, RotColorWorld) and world.eval_envs == ["rot", "color", "none"]
    x = digits(6)
    pairs = world.pairs(x, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    first, second = draw_view_params((6,), replay), draw_view_params((6,), replay)
    torch.testing.assert_close(pairs.first, render(x, **first))
    torch.testing.assert_close(pairs.second, render(x, **second))
    torch.testing.assert_close(pairs.action, relative_action(first, second))
    torch.testing.assert_close(pairs.target, absolute_params(second))


def test_sensitive_world_flips_the_attribute_and_reports_the_change():
    world = world_for(TABLE_INFO, corruption_rate=0.5, flip_prob=0.5)
    assert isinstance(world, SensitiveAttributeWorld) and world.eval_envs == ["sex", "none"]
    assert world.default_env_ratio == {"sex": 0.5, "none": 0.5}
    x = table(1000)
    pairs = world.pairs(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pairs.first[:, 6], x[:, 6])  # never corrupted
    torch.testing.assert_close(pairs.action[:, 0], pairs.second[:, 6] - x[:, 6])
    torch.testing.assert_close(pairs.target[:, 0], pairs.second[:, 6])
    flipped = pairs.action[:, 0] != 0
    assert flipped.float().mean().item() == pytest.approx(0.5, abs=0.05)
    assert set(pairs.action[:, 0].tolist()) <= {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="rotcolor-mnist"):
        world_for({"fps": 30})


def test_make_views_applies_an_environment_drawn_from_env_ratio():
    method = build("contextssl", ROTCOLOR_INFO, IMAGE, env_ratio={"color": 1.0, "rot": 0.0}, **SMALL)
    first, second, action, target, keep = method.make_views(digits(4), torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (4, 3, 32, 32) and target.shape == (4, 4)
    assert keep.tolist() == [0, 0, 1, 1]
    assert (action[:, :2] == 0).all() and (action[:, 2:] != 0).all()
    replay = torch.Generator().manual_seed(0)
    p1, p2 = draw_view_params((4,), replay), draw_view_params((4,), replay)
    torch.testing.assert_close(action[:, 2:], relative_action(p1, p2)[:, 2:])
    default = build("contextssl", ROTCOLOR_INFO, IMAGE, **SMALL)
    assert default.env_ratio == {"rot": 0.5, "color": 0.5}
    envs = {tuple(default.make_views(digits(2), torch.Generator().manual_seed(s))[4].tolist()) for s in range(12)}
    assert envs == {(1.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 1.0)}


def test_the_auxiliary_loss_covers_only_the_given_factors():
    method = build("contextssl", ROTCOLOR_INFO, IMAGE, **SMALL).eval()  # eval: no random context mask
    views = method.make_views(digits(8), torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 3

    def auxiliary(keep, target):
        return method.loss([views[0], views[1], views[2], target, torch.tensor(keep)], labels)["auxiliary"].item()

    target = views[3]
    moved_rot, moved_color = target.clone(), target.clone()
    moved_rot[:, :2] += 1.0
    moved_color[:, 2:] += 1.0
    rot, color = [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]
    assert auxiliary(rot, moved_color) == pytest.approx(auxiliary(rot, target), abs=1e-6)
    assert auxiliary(rot, moved_rot) > auxiliary(rot, target) + 0.1
    assert auxiliary(color, moved_rot) == pytest.approx(auxiliary(color, target), abs=1e-6)
    assert auxiliary([0.0] * 4, moved_rot) == 0.0


def test_loss_reports_its_parts_and_trains_the_prediction_probe_off_the_books():
    method = build("contextssl", ROTCOLOR_INFO, IMAGE, aux_weight=5.0, **SMALL)
    views = method.make_views(digits(8), torch.Generator().manual_seed(0))
    out = method.loss(views, torch.tensor([0, 1, 2, 3, -1, -1, 0, 1]))
    assert out["loss"].item() == pytest.approx(out["contrastive"].item() + 5 * out["auxiliary"].item(), abs=1e-5)
    assert out["features"].shape == (8, method.encoder.feature_dim)
    assert out["embeddings"].shape == (8, method.encoder.feature_dim)
    assert out["pred_probe_loss"].item() > 0 and 0 <= out["pred_probe_top1"].item() <= 1
    out["loss"].backward()
    assert method.prediction_probe.weight.grad.abs().sum() > 0
    assert method.transformer.embed.weight.grad.abs().sum() > 0 and method.aux_predictor.net[0].weight.grad is not None


@pytest.fixture
def one_thread():
    """Tiny ops: one thread avoids the cost of waking a second one on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(one_thread):
    method = build("contextssl", TABLE_INFO, TABULAR, num_classes=2, mask_prob=0.0, **SMALL)
    views = method.make_views(table(64), torch.Generator().manual_seed(0))
    labels = torch.zeros(64, dtype=torch.long)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = method.loss(views, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown factors"):
        build("contextssl", ROTCOLOR_INFO, IMAGE, env_ratio={"rotation": 1.0}, **SMALL)
    with pytest.raises(ValueError, match="eval_contexts"):
        build("contextssl", ROTCOLOR_INFO, IMAGE, **{**SMALL, "eval_contexts": [0, 3]})
    with pytest.raises(ValueError, match="eval_contexts"):
        build("contextssl", ROTCOLOR_INFO, IMAGE, **{**SMALL, "eval_contexts": [8]})  # no room for the query
    with pytest.raises(ValueError, match="data.name=rotcolor-mnist"):
        build("contextssl", {}, IMAGE, **SMALL)


def test_simclr_pairs_takes_the_worlds_two_views():
    method = build("simclr-pairs", ROTCOLOR_INFO, IMAGE, proj_hidden_dim=16, proj_dim=8)
    x = digits(4)
    views = method.make_views(x, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    first, second = draw_view_params((4,), replay), draw_view_params((4,), replay)
    torch.testing.assert_close(views[0], render(x, **first))
    torch.testing.assert_close(views[1], render(x, **second))
    assert method.loss(views, torch.zeros(4, dtype=torch.long))["loss"].item() > 0
    assert method.evaluations == ("equivariance",)


def test_a_mask_that_leaves_under_one_context_pair_is_named_in_one_warning(caplog):
    params = {**SMALL, "block_size": 32, "eval_contexts": [0, 2]}
    with caplog.at_level("WARNING", logger="selfsup.methods.contextssl"):
        build("contextssl", ROTCOLOR_INFO, IMAGE, mask_prob=0.9, **params)
    [record] = [r for r in caplog.records if r.name == "selfsup.methods.contextssl"]
    line = record.getMessage()
    assert "\n" not in line
    for words in ("method.mask_prob=0.9", "method.block_size=32", "0.75", "51 %", "block_size 128", "3.15"):
        assert words in line
    caplog.clear()
    with caplog.at_level("WARNING", logger="selfsup.methods.contextssl"):
        build("contextssl", ROTCOLOR_INFO, IMAGE, mask_prob=0.9, **{**params, "block_size": 128})
        build("contextssl", ROTCOLOR_INFO, IMAGE, mask_prob=0.5, **params)
    assert not [r for r in caplog.records if r.name == "selfsup.methods.contextssl"]


def test_a_frozen_encoder_stays_as_loaded_while_the_transformer_trains(one_thread):
    method = build("contextssl", ROTCOLOR_INFO, IMAGE, freeze_encoder=True, mask_prob=0.0, **SMALL)
    method.train()  # every submodule in training mode, as a trainer may set them one by one
    encoder_before = {k: v.clone() for k, v in method.encoder.state_dict().items()}  # BatchNorm buffers too
    transformer_before = [p.detach().clone() for p in method.transformer.parameters()]
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-2, weight_decay=0.1)
    for step in range(2):
        views = method.make_views(digits(16), torch.Generator().manual_seed(step))
        loss = method.loss(views, torch.zeros(16, dtype=torch.long))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for p in method.encoder.parameters())
    assert not method.encoder.training and method.transformer.training
    for key, value in method.encoder.state_dict().items():
        torch.testing.assert_close(value, encoder_before[key], rtol=0, atol=0, msg=key)
    assert any(not torch.equal(p, q) for p, q in zip(method.transformer.parameters(), transformer_before))
