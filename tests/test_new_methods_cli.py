"""Issue 12's recipes end to end on tiny data (digits, a few steps) through the CLI entry point,
their views through `selfsup show-views`, and the engine's training machinery in one short DINO
run: the last layer frozen in the first epoch, the weight-decay schedule, per-module learning
rates, gradient clipping and the online kNN monitor."""
import json
import math

import lightning as L
import pytest
import torch

from run_utils import column, listed_recipes, metrics
from selfsup.cli import main
from selfsup.engine.configure import compose_config
from selfsup.engine.optim import scheduled_weight_decay
from selfsup.engine.train import train

TINY = ["data.name=digits", "data.limit=300", "data.batch_size=64", "trainer.enable_progress_bar=false",
        "eval.map_points=0", "eval.baselines=false", "eval.limit=200", "trainer.log_every_n_steps=1"]
RECIPES = {
    "dino-fashion-mnist": ["model.width=8", "method.out_dim=64", "method.hidden_dim=32", "method.bottleneck_dim=16",
                           "augment.num_local_crops=2"],
    "mocov3-fashion-mnist": ["model.width=8", "method.proj_hidden_dim=32", "method.proj_dim=16",
                             "method.pred_hidden_dim=32"],
    "swav-fashion-mnist": ["model.width=8", "method.num_prototypes=20", "method.proj_hidden_dim=32",
                           "method.proj_dim=16", "method.queue_length=128", "method.queue_start_epoch=0",
                           "augment.num_local_crops=2"],
    "nnclr-fashion-mnist": ["model.width=8", "method.proj_hidden_dim=32", "method.proj_dim=16",
                            "method.pred_hidden_dim=32", "method.queue_size=128"],
    "mae-fashion-mnist": ["method.decoder_width=32", "method.decoder_heads=2", "method.decoder_depth=1"],
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("new-recipes")
    for recipe, small in RECIPES.items():  # in this process: a fresh interpreter would cost ~9 s of imports each
        assert main(["train", recipe, *TINY, *small, "trainer.max_steps=3", f"run.dir={root / recipe}"]) == 0, recipe
    return root


def test_the_new_recipes_are_listed(capsys):
    assert set(RECIPES) <= listed_recipes(capsys)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_and_evaluates(recipe, runs):
    run_dir = runs / recipe
    results = json.loads((run_dir / "eval.json").read_text())
    assert 0.0 <= results["knn.top1"] <= 1.0 and 0.0 <= results["linear.top1"] <= 1.0
    assert f"name: {recipe.split('-')[0]}" in (run_dir / "config.yaml").read_text()
    losses = column(metrics(run_dir), "train/loss")
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_show_views_draws_the_recipes_views(recipe, tmp_path):
    out = tmp_path / "views.png"
    assert main(["show-views", recipe, "data.name=digits", *RECIPES[recipe], "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


class Record(L.Callback):
    """What the engine did at every step of a short run: the method's epoch, the decayed
    groups' weight decay, the learning rates, the gradient norm the optimiser was given, and
    the DINO last layer and encoder at every epoch end."""

    def __init__(self):
        self.epochs, self.weight_decays, self.lrs, self.grad_norms, self.snapshots = [], [], [], [], []

    def snapshot(self, module):
        return (module.method.head.last_layer.weight.detach().clone(),
                next(module.method.encoder.parameters()).detach().clone())

    def on_train_start(self, trainer, module):
        self.snapshots.append(self.snapshot(module))
        trainer.optimizers[0].register_step_post_hook(self.after_step)

    def after_step(self, optimizer, args, kwargs):  # inside Lightning's step: its closure ran backward and clipped
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.grad_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        groups = {g["name"]: g for g in optimizer.param_groups}
        self.weight_decays.append((groups["decay"]["weight_decay"], groups["decay@x2"]["weight_decay"],
                                   groups["no_decay"]["weight_decay"]))
        self.lrs.append((groups["decay"]["lr"], groups["decay@x2"]["lr"], groups["no_decay@x2"]["lr"]))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.epochs.append(module.method.epoch)

    def on_train_epoch_end(self, trainer, module):
        self.snapshots.append(self.snapshot(module))


@pytest.fixture(scope="module")
def dino_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dino-engine") / "run"
    cfg = compose_config("dino-fashion-mnist", [*TINY, *RECIPES["dino-fashion-mnist"], "trainer.max_epochs=2",
                                                "trainer.gradient_clip_val=0.05", "optim.lr_scales.head=2.0",
                                                "optim.warmup_epochs=0", f"run.dir={run_dir}"])
    record = Record()
    train(cfg, callbacks=[record])
    return cfg, record, run_dir


def test_engine_tells_the_method_its_fractional_epoch(dino_run):
    _, record, _ = dino_run
    assert record.epochs == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75])  # 4 steps an epoch


def test_dino_last_layer_is_frozen_in_the_first_epoch_then_trains(dino_run):
    _, record, _ = dino_run
    (last0, enc0), (last1, enc1), (last2, _) = record.snapshots
    assert torch.equal(last1, last0)  # no update at all in epoch 0: not even weight decay
    assert not torch.equal(enc1, enc0)  # while the encoder trains
    assert not torch.equal(last2, last1)


def test_weight_decay_follows_its_cosine_on_the_decayed_groups_only(dino_run):
    cfg, record, _ = dino_run
    expected = [scheduled_weight_decay(cfg.optim, step / 8) for step in range(8)]
    assert [w[0] for w in record.weight_decays] == pytest.approx(expected)
    assert [w[1] for w in record.weight_decays] == pytest.approx(expected)
    assert all(w[2] == 0 for w in record.weight_decays)
    assert expected[0] == pytest.approx(0.04) and expected[-1] > 0.35


def test_lr_scales_hold_through_the_learning_rate_schedule(dino_run):
    _, record, _ = dino_run
    assert len({round(lr[0], 12) for lr in record.lrs}) > 1  # the cosine moves them
    for base, head, head_no_decay in record.lrs:
        assert head == pytest.approx(2 * base) and head_no_decay == pytest.approx(2 * base)


def test_gradients_are_clipped_before_the_optimiser_step(dino_run):
    _, record, _ = dino_run
    assert len(record.grad_norms) == 8 and max(record.grad_norms) <= 0.05 * (1 + 1e-4)


def test_online_knn_monitor_reports_beside_the_probe_each_epoch(dino_run):
    _, _, run_dir = dino_run
    rows = metrics(run_dir)
    knn, probe = column(rows, "val/knn_top1"), column(rows, "val/probe_top1")
    assert len(knn) == 2 and len(probe) == 2
    assert all(0.3 < v <= 1 for v in knn)  # chance is 0.1; digits are easy for a kNN even on weak features
