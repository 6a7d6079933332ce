"""The benchmark tables' compute-matched budgets (bench/compute_budget.py): equal steps, equal
images seen, equal training wall time."""
import importlib.util
import math
from pathlib import Path

import pytest

from selfsup.engine.budget import budget_seconds
from selfsup.engine.configure import compose_config

spec = importlib.util.spec_from_file_location("compute_budget",
                                              Path(__file__).parents[1] / "bench" / "compute_budget.py")
compute_budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compute_budget)


@pytest.mark.parametrize("recipe,batch", [("simclr-fashion-mnist", 256), ("rotnet-fashion-mnist", 128),
                                          ("exemplar-fashion-mnist", 64)])
def test_equal_images_seen_gives_each_recipe_its_own_number_of_steps(recipe, batch):
    overrides = compute_budget.budget_overrides(recipe, "images", 30000)
    cfg = compose_config(recipe, overrides)
    assert cfg.data.batch_size == batch and cfg.trainer.max_epochs == -1
    assert cfg.trainer.max_steps == math.ceil(30000 / batch)  # 118 / 235 / 469 steps: 30,000 images (+ < 1 batch)
    smaller = compute_budget.budget_overrides(recipe, "images", 30000, ["data.batch_size=100"])
    assert "trainer.max_steps=300" in smaller  # the batch size the run will use


def test_equal_steps_and_equal_time():
    cfg = compose_config("rotnet-fashion-mnist", compute_budget.budget_overrides("rotnet-fashion-mnist", "steps", 300))
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (300, -1)  # not cut short by the recipe's 3 epochs
    cfg = compose_config("simclr-fashion-mnist", compute_budget.budget_overrides("simclr-fashion-mnist", "time", 600))
    assert cfg.trainer.max_time == "00:00:10:00" and budget_seconds(cfg.trainer.max_time) == 600
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (-1, 10000)  # the time plans the steps under a far cap
    assert [compute_budget.budget_tag(m, 600) for m in compute_budget.BUDGETS] == ["", "-images600", "-time600s"]
    with pytest.raises(ValueError, match="unknown budget 'flops'; valid: steps, images, time"):
        compute_budget.budget_overrides("simclr-fashion-mnist", "flops", 1)
    with pytest.raises(ValueError, match="positive"):
        compute_budget.budget_overrides("simclr-fashion-mnist", "images", 0)
