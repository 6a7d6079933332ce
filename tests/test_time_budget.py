"""trainer.max_time: the schedule planned from the measured step time (a fake clock: 2 s a step)."""
import lightning as L
import pytest

from selfsup.config.loading import build_config, parse_overrides, recipe_values
from selfsup.engine import budget
from selfsup.engine.budget import budget_seconds
from selfsup.engine.checkpoint import load_checkpoint_file
from selfsup.engine.configure import compose_config
from selfsup.engine.run import Run
from selfsup.engine.train import resume, train

FAST = ["data.name=digits", "data.batch_size=64", "trainer.enable_progress_bar=false", "model.width=8",
        "method.proj_hidden_dim=64", "method.proj_dim=32", "optim.lr=0.1", "trainer.log_every_n_steps=5",
        "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.check_val_every_n_epoch=100",
        "optim.min_lr_ratio=0.01", "trainer.max_time=00:00:00:40"]  # 40 s


class FakeClock(L.Callback):
    """Time is 2 s x the optimiser steps done (the trainer this callback sees)."""

    def on_fit_start(self, trainer, pl_module):
        self.trainer = trainer

    def __call__(self) -> float:
        return 2.0 * self.trainer.global_step


class SlowingClock(FakeClock):
    """2 s a step in the first epoch, 4 s a step after it (another job started)."""

    def on_fit_start(self, trainer, pl_module):
        super().on_fit_start(trainer, pl_module)
        self.fast = trainer.num_training_batches

    def __call__(self) -> float:
        step = self.trainer.global_step
        return 2.0 * min(step, self.fast) + 4.0 * max(0, step - self.fast)


class StopAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError("interrupted")


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(budget, "now", fake)
    return fake


def expected_steps(budget_s=40.0, step_s=2.0, skip=1, measure=10, reserve=0.03):
    done = skip + measure
    return done + int((budget_s - step_s * done) * (1 - reserve) // step_s)


def test_max_time_parses():
    assert budget_seconds("00:00:09:00") == 540 and budget_seconds({"minutes": 9, "seconds": 30}) == 570
    assert budget_seconds(None) is None
    cfg = build_config(recipe_values("simclr-fashion-mnist"), parse_overrides(["trainer.max_time={minutes: 14}"]))
    assert budget_seconds(cfg.trainer.max_time) == 840  # the command line's dict arrives as a DictConfig


def test_the_plan_fits_the_budget_and_completes_the_cosine(tmp_path, clock):
    run = train(compose_config(None, [*FAST, f"run.dir={tmp_path / 'r'}"]), callbacks=[clock])
    total = expected_steps()  # 11 + floor(18 x 0.97 / 2) = 19
    assert total == 19
    info = run.training()
    assert info["steps"] == total and info["planned_steps"] == total
    checkpoint = load_checkpoint_file(run.checkpoint_path)
    assert checkpoint["planned_total_steps"] == total
    schedule = checkpoint["lr_schedulers"][0]["lr_lambdas"][0]  # the WarmupCosine's state
    assert schedule["total_steps"] == total and schedule["warmup_steps"] < total  # a complete cosine


@pytest.mark.slow
def test_the_first_validation_plans_again(tmp_path, clock):
    """Validation after each epoch: planned at step 11 (48 steps), then again after the first
    validation at the epoch's end from the steps and time so far."""
    overrides = [o for o in FAST if not o.startswith(("trainer.check_val", "trainer.max_time"))]
    run = train(compose_config(None, [*overrides, "trainer.max_time=00:00:01:40", f"run.dir={tmp_path / 'r'}"]),
                callbacks=[clock])
    per_epoch = clock.trainer.num_training_batches
    assert 11 < per_epoch < expected_steps(100.0)
    total = per_epoch + int((100.0 - 2.0 * per_epoch) * 0.97 // 2.0)
    assert run.training()["steps"] == run.training()["planned_steps"] == total


@pytest.mark.slow
def test_a_machine_that_slows_down_is_planned_again(tmp_path, monkeypatch):
    """Validation after each epoch, 200 s: the first plans assume 2 s a step; the machine halves
    its speed after the first epoch, so the plan after the second epoch counts 4 s a step for
    what is left and the run ends within the budget, its cosine complete."""
    overrides = [o for o in FAST if not o.startswith(("trainer.check_val", "trainer.max_time"))]
    cfg = compose_config(None, [*overrides, "trainer.max_time=00:00:03:20", f"run.dir={tmp_path / 'r'}"])
    clock = SlowingClock()
    monkeypatch.setattr(budget, "now", clock)
    run = train(cfg, callbacks=[clock])
    per_epoch = clock.fast
    assert 11 < per_epoch and 3 * per_epoch < 200 / 2  # three epochs fit at the first speed
    at_second = 2 * per_epoch  # the second validation: 2 s x per_epoch + 4 s x per_epoch
    spent = 2.0 * per_epoch + 4.0 * per_epoch
    total = at_second + int((200.0 - spent) * 0.97 // 4.0)
    info = run.training()
    assert info["steps"] == info["planned_steps"] == total
    assert clock() <= 200.0  # the fake time at the end: within the budget
    never_replanned = per_epoch + int((200.0 - 2.0 * per_epoch) * 0.97 // 2.0)
    assert total < never_replanned


def test_max_steps_still_caps_the_plan(tmp_path, clock):
    run = train(compose_config(None, [*FAST, "trainer.max_steps=12", f"run.dir={tmp_path / 'r'}"]), callbacks=[clock])
    assert run.training()["steps"] == 12 and run.training()["planned_steps"] == 12


def test_a_validation_on_the_capped_last_step_does_not_add_a_step(tmp_path, clock):
    """max_steps=20 with validation every epoch of 20 steps: the plan after that validation
    stays at the cap (it once planned step + 1 = 21)."""
    overrides = [o for o in FAST if not o.startswith(("trainer.check_val", "trainer.max_time"))]
    run = train(compose_config(None, [*overrides, "trainer.max_time=00:00:10:00", "trainer.max_steps=20",
                                      "trainer.limit_train_batches=20", f"run.dir={tmp_path / 'r'}"]),
                callbacks=[clock])
    assert run.training()["steps"] == 20 and run.training()["planned_steps"] == 20


def test_a_resume_keeps_the_plan(tmp_path, clock, monkeypatch):
    run_dir = tmp_path / "r"
    cfg = compose_config(None, [*FAST, "trainer.ckpt_every_n_steps=12", f"run.dir={run_dir}"])
    with pytest.raises(RuntimeError, match="interrupted"):
        train(cfg, callbacks=[clock, StopAt(14)])
    assert load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["planned_total_steps"] == 19
    monkeypatch.setattr(budget, "now", lambda: 0.0)  # measuring again would plan the max_epochs cap
    resumed = resume(Run.open(run_dir))
    assert resumed.training()["steps"] == 19 and resumed.training()["planned_steps"] == 19


def test_without_max_time_there_is_no_plan(tmp_path):
    run = train(compose_config(None, [*FAST[:-1], "trainer.max_time=null", "trainer.max_steps=2",
                                      f"run.dir={tmp_path / 'r'}"]))
    assert run.training()["planned_steps"] is None and run.training()["steps"] == 2
