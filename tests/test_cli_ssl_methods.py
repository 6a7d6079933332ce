"""Issue 3's recipes end to end on tiny data (digits, a few steps), through the CLI entry point in
this process, and MoCo's queue across a crash and `--resume`."""
import json
import math

import lightning as L
import pytest
import torch

from run_utils import column, listed_recipes, metrics
from selfsup.cli import main
from selfsup.engine.configure import compose_config
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.train import resume, train

RECIPES = {
    "moco-fashion-mnist": "moco", "supcon-fashion-mnist": "supcon", "supcon-moco-fashion-mnist": "supcon-moco",
    "byol-fashion-mnist": "byol", "simsiam-fashion-mnist": "simsiam", "barlow-twins-fashion-mnist": "barlow-twins",
    "vicreg-fashion-mnist": "vicreg",
}
FAST = ["data.name=digits", "data.batch_size=64", "trainer.enable_progress_bar=false", "eval.map_points=0",
        "model.width=8", "method.proj_hidden_dim=64", "method.proj_dim=32", "trainer.log_every_n_steps=1",
        "eval.baselines=false", "eval.limit=200", "trainer.precision=32-true"]  # the queue's unit norms to 1e-6
QUEUE = {"moco-fashion-mnist": ["method.queue_size=96"], "supcon-moco-fashion-mnist": ["method.queue_size=96"]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipes")
    for recipe in RECIPES:
        code = main(["train", recipe, *FAST, *QUEUE.get(recipe, []), "trainer.max_steps=2", f"run.dir={root / recipe}"])
        assert code == 0, recipe
    return root


def test_every_recipe_is_listed(capsys):
    assert set(RECIPES) <= listed_recipes(capsys)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_and_evaluates(recipe, runs):
    run_dir = runs / recipe
    results = json.loads((run_dir / "eval.json").read_text())
    assert 0.0 <= results["knn.top1"] <= 1.0 and 0.0 <= results["linear.top1"] <= 1.0
    assert f"name: {RECIPES[recipe]}" in (run_dir / "config.yaml").read_text()
    rows = metrics(run_dir)
    assert len(column(rows, "train/loss")) == 2 and all(math.isfinite(v) for v in column(rows, "train/loss"))
    # collapse diagnostics are logged for every method
    assert column(rows, "train/embedding_std") and all(0 <= v <= 1 for v in column(rows, "train/embedding_std"))
    assert column(rows, "train/effective_rank") and all(v >= 1 for v in column(rows, "train/effective_rank"))


@pytest.mark.parametrize("recipe", ["supcon-fashion-mnist", "supcon-moco-fashion-mnist"])
def test_supcon_recipes_train_on_partly_labelled_data_and_log_both_terms(recipe, runs):
    assert "labelled_fraction: 0.1" in (runs / recipe / "config.yaml").read_text()
    rows = metrics(runs / recipe)
    assert column(rows, "train/loss_unsup") and column(rows, "train/loss_sup")


def test_moco_queue_is_in_the_checkpoint(runs):
    state = load_checkpoint_file(runs / "moco-fashion-mnist" / "checkpoints" / "last.ckpt")["state_dict"]
    assert int(state["method.queue.count"]) == 96 and int(state["method.queue.ptr"]) == 2 * 64 - 96  # wrapped
    assert state["method.queue.embeddings"].shape == (96, 32)
    assert torch.allclose(state["method.queue.embeddings"].norm(dim=1), torch.ones(96))  # normalised keys
    labels = load_checkpoint_file(runs / "supcon-moco-fashion-mnist" / "checkpoints" / "last.ckpt")["state_dict"]
    assert (labels["method.queue.labels"] >= -1).all() and (labels["method.queue.labels"] == -1).any()


class CrashAfterFirstEpoch(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            raise RuntimeError("simulated crash")


def test_moco_resumed_after_a_crash_ends_like_an_uninterrupted_run(tmp_path):
    # 300 samples, batch 64: 4 steps (256 keys) an epoch; the queue of 400 wraps in the second
    args = [*FAST, "data.limit=300", "trainer.max_epochs=2", "method.queue_size=400"]
    straight = train(compose_config("moco-fashion-mnist", [*args, f"run.dir={tmp_path / 'straight'}"]))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(compose_config("moco-fashion-mnist", [*args, f"run.dir={tmp_path / 'crashed'}"]), callbacks=[CrashAfterFirstEpoch()])
    mid = load_checkpoint_file(tmp_path / "crashed" / "checkpoints" / "last.ckpt")
    assert mid["epoch"] == 0 and int(mid["state_dict"]["method.queue.count"]) == 256
    resumed = resume(tmp_path / "crashed")
    a = load_checkpoint_file(straight / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_checkpoint_file(resumed / "checkpoints" / "last.ckpt")["state_dict"]
    assert int(a["method.queue.count"]) == 400 and int(a["method.queue.ptr"]) == 512 - 400
    for key in a:
        if key.startswith(("method.queue.", "method.target.", "method.encoder.")):
            torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0, msg=key)
