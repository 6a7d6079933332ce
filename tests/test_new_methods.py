"""Issue 12's methods (DINO, MoCo v3, SwAV, NNCLR, MAE) as modules, and the training machinery
they need: per-module learning rates and the weight-decay schedule."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.config.loading import ConfigError
from selfsup.config.schema import AugmentConfig, ModelConfig, OptimConfig
from selfsup.engine.optim import (build_optimizer, cosine_ramp, group_lr, scheduled_weight_decay,
                                  set_weight_decay)
from selfsup.losses import nnclr_loss, patchify, unpatchify
from selfsup.methods import METHODS, MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder

SPEC = InputSpec(1, (1, 8, 8), "image")
MULTI_CROP = AugmentConfig(num_local_crops=2)
SMALL = {
    "dino": {"out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8},
    "mocov3": {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 16},
    "swav": {"num_prototypes": 10, "proj_hidden_dim": 16, "proj_dim": 8},
    "nnclr": {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 16, "queue_size": 20},
    "mae": {"decoder_depth": 1, "decoder_width": 16, "decoder_heads": 2},
}
ENCODER = {"mae": "vit-tiny"}
LABELS = torch.tensor([0, 1, 2, -1, 0, 1, -1, -1])


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name, encoder=None, augment=MULTI_CROP, **params):
    torch.manual_seed(0)
    cls, p = resolve_method_params({"name": name, **SMALL[name], **params})
    enc = build_encoder(ModelConfig(encoder=encoder or ENCODER.get(name, "convnet-small"), width=4), SPEC,
                        (0.5,), (0.25,))
    return cls(p, enc, MethodContext(SPEC, 10, augment))


def batch(seed=1):
    return torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def step(method, x=None, seed=2):
    views = method.make_views(batch() if x is None else x, torch.Generator().manual_seed(seed))
    return method.loss(views, LABELS)


def test_the_new_methods_are_registered():
    assert {"dino", "mocov3", "swav", "nnclr", "mae"} <= set(METHODS.names())


@pytest.mark.parametrize("name,encoder", [("dino", None), ("mocov3", None), ("mocov3", "vit-tiny"), ("swav", None),
                                          ("nnclr", None), ("mae", None)])
def test_loss_is_finite_and_reaches_every_trainable_encoder_parameter(name, encoder):
    method = build(name, encoder)
    out = step(method)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert out["features"].shape == (8, method.encoder.feature_dim)
    if "embeddings" in out:
        assert out["embeddings"].shape[0] == 8
    out["loss"].backward()
    trainable = [(n, p) for n, p in method.encoder.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and torch.isfinite(p.grad).all() for _, p in trainable)
    assert any(p.grad.abs().sum() > 0 for _, p in trainable)


def test_features_are_the_encoders_of_the_first_global_crop():
    method = build("dino").eval()  # eval: BatchNorm uses running statistics, so one crop alone gives the same
    views = method.make_views(batch(), torch.Generator().manual_seed(2))
    out = method.loss(views, LABELS)
    torch.testing.assert_close(out["features"], method.encoder(views[0]))


def test_multi_crop_views_come_global_first_and_are_drawn_by_show_views():
    method = build("swav")
    x = batch()
    views = method.make_views(x, torch.Generator().manual_seed(2))
    assert [tuple(v.shape[-2:]) for v in views] == [(8, 8), (8, 8), (3, 3), (3, 3)]
    assert [c.title for c in method.view_columns(x, views)][2:] == ["view 3 (3x3)", "view 4 (3x3)"]


@pytest.mark.parametrize("name,target,online", [("dino", "teacher", ("encoder", "head")),
                                                ("mocov3", "target", ("encoder", "projector"))])
def test_momentum_copy_moves_towards_the_online_network_by_the_scheduled_momentum(name, target, online):
    method = build(name, momentum=0.9)
    copy = getattr(method, target)
    assert all(not p.requires_grad for p in copy.parameters())
    optimised = {id(p) for g in build_optimizer(OptimConfig(), method, None).param_groups for p in g["params"]}
    assert not {id(p) for p in copy.parameters()} & optimised
    with torch.no_grad():
        for module in online:
            for p in getattr(method, module).parameters():
                p.add_(torch.randn_like(p))
    online_params = [p.detach().clone() for m in online for p in getattr(method, m).parameters()]
    before = [p.detach().clone() for p in copy.parameters()]
    method.after_optimizer_step(0.0)  # cosine schedule at progress 0: the base momentum 0.9
    for t, b, o in zip(copy.parameters(), before, online_params):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    assert sum((t - o).norm() for t, o in zip(copy.parameters(), online_params)) < \
        sum((b - o).norm() for b, o in zip(before, online_params))
    last = [p.detach().clone() for p in copy.parameters()]
    method.after_optimizer_step(1.0)  # at the end of training the momentum is 1: the copy stays
    assert all(torch.equal(t, b) for t, b in zip(copy.parameters(), last))


def test_dino_head_last_layer_is_weight_normalised_with_unit_norm():
    method = build("dino")
    with torch.no_grad():
        method.head.last_layer.weight.mul_(torch.rand(32, 1) * 5 + 0.1)  # rescaling rows changes nothing
    z = method.head.embed(torch.randn(4, method.encoder.feature_dim))
    assert torch.allclose(z.norm(dim=1), torch.ones(4))
    expected = z @ F.normalize(method.head.last_layer.weight, dim=1).T
    torch.testing.assert_close(method.head.scores(z), expected)
    assert method.head.scores(z).abs().max() <= 1 + 1e-6  # cosines


def test_dino_last_layer_gets_no_gradient_in_the_first_epoch_then_trains():
    method = build("dino", freeze_last_layer=1)
    for epoch, frozen in ((0.0, True), (0.99, True), (1.0, False), (2.5, False)):
        method.zero_grad(set_to_none=True)
        method.epoch = epoch
        step(method)["loss"].backward()
        method.before_optimizer_step()
        assert (method.head.last_layer.weight.grad is None) == frozen, epoch
        assert method.head.mlp[0].weight.grad is not None


def test_dino_teacher_temperature_follows_the_fractional_epoch():
    method = build("dino", teacher_temp_start=0.04, teacher_temp_end=0.07, teacher_temp_warmup_epochs=2).eval()
    losses = {}
    for epoch in (0.0, 1.0, 2.0, 5.0):
        method.epoch = epoch
        with torch.no_grad():
            losses[epoch] = float(step(method)["loss"])
    assert losses[0.0] != losses[1.0] != losses[2.0]
    assert losses[2.0] == pytest.approx(losses[5.0])  # past the warm-up: constant


def test_dino_centre_moves_in_training_only():
    method = build("dino")
    step(method)
    centre = method.criterion.center.clone()
    assert centre.abs().sum() > 0
    method.eval()
    step(method)
    assert torch.equal(method.criterion.center, centre)


def test_swav_prototypes_are_normalised_after_each_step_and_frozen_in_the_first_epoch():
    method = build("swav", freeze_prototypes_epochs=1)
    norms = method.prototypes.weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms))
    optimizer = torch.optim.SGD(method.parameters(), lr=0.5)
    for epoch, frozen in ((0.5, True), (1.0, False)):
        method.epoch = epoch
        optimizer.zero_grad(set_to_none=True)
        before = method.prototypes.weight.detach().clone()
        step(method)["loss"].backward()
        method.before_optimizer_step()
        optimizer.step()
        assert torch.equal(method.prototypes.weight, before) == frozen
        if not frozen:
            assert not torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(10), atol=1e-4)
        method.after_optimizer_step(0.5)
        norms = method.prototypes.weight.norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)


def test_swav_queue_starts_at_its_epoch_and_enters_the_sinkhorn_normalisation():
    method = build("swav", queue_length=12, queue_start_epoch=1)
    method.epoch = 0.5
    step(method)
    assert [int(q.count) for q in method.queues] == [0, 0]
    method.epoch = 1.0
    step(method, seed=3)  # the queue starts empty: this batch is coded without queue rows, then enqueued
    assert [int(q.count) for q in method.queues] == [8, 8]
    assert not torch.equal(method.queues[0].filled()[0], method.queues[1].filled()[0])  # one queue per global crop
    method.eval()  # no enqueueing: the same batch with and without the queue
    with torch.no_grad():
        with_queue = step(method, seed=3)["loss"]
        method.epoch = 0.0
        without = step(method, seed=3)["loss"]
    assert not torch.isclose(with_queue, without)


def test_nnclr_fills_the_support_set_before_its_first_lookup_then_after_each_step():
    method = build("nnclr", queue_size=20)
    assert int(method.queue.count) == 0
    step(method)
    assert int(method.queue.count) == 8  # the first batch, once
    step(method, seed=3)
    assert int(method.queue.count) == 16
    step(method, seed=4)
    assert int(method.queue.count) == 20  # full: the oldest entries are overwritten


def test_nnclr_positives_come_from_the_support_set():
    method = build("nnclr")  # training mode: BatchNorm on batch statistics, the same in every pass here
    views = method.make_views(batch(), torch.Generator().manual_seed(2))
    with torch.no_grad():
        z = method.projector(method.encoder(torch.cat(views)))
        p = method.predictor(z)
    support = z[:8].flip(0) + 0.01 * torch.randn(8, 8, generator=torch.Generator().manual_seed(5))
    method.queue.enqueue(support)
    loss = method.loss(views, LABELS)["loss"].detach()
    expected = nnclr_loss(z[:8], z[8:], p[:8], p[8:], support, 0.1)
    other = nnclr_loss(z[:8], z[8:], p[:8], p[8:], z[8:], 0.1)
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, other)
    torch.testing.assert_close(method.queue.filled()[0], torch.cat([support, z[:8]]))  # then view 1 is enqueued


def test_mae_views_keep_a_quarter_of_the_patches_and_show_them():
    method = build("mae", mask_ratio=0.75)
    x = torch.rand(8, 1, 8, 8)
    views = method.make_views(x, torch.Generator().manual_seed(2))
    grid = 16  # 8 px images in 2-px patches (auto patch size)
    assert views.keep.shape == (8, 4) and views.mask.shape == (8, grid)
    assert (views.mask.sum(1) == 12).all()
    shown = method.view_columns(x, views)[1].images
    hidden = patchify(shown, 2)[views.mask.bool()]
    assert torch.allclose(hidden, torch.full_like(hidden, 0.5))


def test_mae_encoder_sees_only_the_visible_patches_and_the_loss_only_the_masked():
    method = build("mae")
    views = method.make_views(torch.rand(8, 1, 8, 8), torch.Generator().manual_seed(2))
    masked = views.mask.bool()
    patches = patchify(views.images, 2)
    patches[masked] = torch.rand_like(patches[masked])  # other pixels in every masked patch
    repainted = unpatchify(patches, 2)
    vit, normalize = method.encoder.backbone, method.encoder.normalize
    torch.testing.assert_close(vit.forward_tokens(normalize(repainted), views.keep),
                               vit.forward_tokens(normalize(views.images), views.keep))

    captured = {}
    hook = method.decoder.register_forward_hook(lambda module, args, out: captured.setdefault("pred", out))
    loss = method.loss(views, LABELS)["loss"]
    hook.remove()
    grad, = torch.autograd.grad(loss, captured["pred"])
    assert grad[~masked].abs().max() == 0 and grad[masked].abs().sum() > 0


def test_mae_needs_a_vit():
    with pytest.raises(ValueError, match="model.encoder=vit-tiny"):
        build("mae", encoder="convnet-small")


def test_mocov3_freezes_the_patch_projection_of_a_vit_only_when_asked():
    frozen = build("mocov3", "vit-tiny", freeze_patch_embed=True)
    assert all(not p.requires_grad for p in frozen.encoder.backbone.patch_embed.parameters())
    optimised = {id(p) for g in build_optimizer(OptimConfig(), frozen, None).param_groups for p in g["params"]}
    assert not {id(p) for p in frozen.encoder.backbone.patch_embed.parameters()} & optimised
    trained = build("mocov3", "vit-tiny", freeze_patch_embed=False)
    assert all(p.requires_grad for p in trained.encoder.backbone.patch_embed.parameters())
    build("mocov3", "convnet-small", freeze_patch_embed=True)  # no patch projection: nothing to freeze


# -- the training machinery -------------------------------------------------------------------
def test_weight_decay_schedule_is_a_cosine_from_start_to_end():
    cfg = OptimConfig(weight_decay=0.04, weight_decay_end=0.4)
    for progress in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        expected = 0.4 - (0.4 - 0.04) * (1 + math.cos(math.pi * progress)) / 2  # DINO's cosine_scheduler
        assert scheduled_weight_decay(cfg, progress) == pytest.approx(expected, abs=1e-12)
    assert scheduled_weight_decay(cfg, 0.5) == pytest.approx(0.22)
    assert scheduled_weight_decay(OptimConfig(weight_decay=0.05), 0.7) == 0.05  # no end: constant
    assert cosine_ramp(1.0, 0.0, 2.0) == 0.0 and cosine_ramp(1.0, 0.0, -1.0) == 1.0


def test_set_weight_decay_changes_only_the_decayed_groups():
    method = build("dino")
    probe = torch.nn.Linear(method.encoder.feature_dim, 10)
    optimizer = build_optimizer(OptimConfig(name="adamw", lr=1e-3, weight_decay=0.04), method, probe)
    set_weight_decay(optimizer, 0.3)
    by_name = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert by_name == {"decay": 0.3, "no_decay": 0.0, "probe": 0.0}


def test_lr_scales_give_a_module_its_own_learning_rate_in_both_decay_groups():
    method = build("nnclr")
    cfg = OptimConfig(name="lars", lr=0.2, weight_decay=1e-4, lr_scales={"predictor": 10.0, "predictor.net.0": 0.5})
    optimizer = build_optimizer(cfg, method, None)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"decay", "no_decay", "decay@x10", "no_decay@x10", "decay@x0.5"}
    ids = lambda module: {id(p) for p in module.parameters()}  # noqa: E731
    predictor = ids(method.predictor) - ids(method.predictor.net[0])
    assert {id(p) for g in ("decay@x10", "no_decay@x10") for p in groups[g]["params"]} == predictor
    assert {id(p) for p in groups["decay@x0.5"]["params"]} == ids(method.predictor.net[0])
    assert groups["decay@x10"]["lr"] == pytest.approx(2.0) and groups["decay@x10"]["weight_decay"] == 1e-4
    assert groups["no_decay@x10"]["weight_decay"] == 0 and groups["no_decay@x10"]["lars_exclude"]
    assert [group_lr(cfg, g) for g in optimizer.param_groups] == pytest.approx([g["lr"] for g in
                                                                               optimizer.param_groups])
    torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)  # a schedule scales every group alike
    assert groups["decay@x10"]["lr"] == pytest.approx(1.0) and groups["decay"]["lr"] == pytest.approx(0.1)


def test_lr_scales_must_name_a_module_and_be_non_negative():
    method = build("nnclr")
    with pytest.raises(ConfigError, match="optim.lr_scales.predicter.*optim.lr_scales.predictor"):
        build_optimizer(OptimConfig(lr_scales={"predicter": 10.0}), method, None)
    with pytest.raises(ConfigError, match=">= 0"):
        build_optimizer(OptimConfig(lr_scales={"predictor": -1.0}), method, None)
