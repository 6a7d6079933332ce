"""A wall-time budget (``trainer.max_time``) turned into a number of optimiser steps, so the
learning-rate schedule is a complete warm-up + cosine over what fits in the time.

:class:`TimeBudget` times optimiser steps early in training (after ``skip_steps`` that pay for
allocation and caches), then plans ``steps done + remaining time / time per step`` steps in all
(capped by ``trainer.max_steps`` / ``max_epochs``): the module's schedule and the trainer's
``max_steps`` follow that plan (:meth:`SSLModule.set_planned_steps`). The first validation's time
is spread over the steps between validations and the plan is made once more after it, with
the step time measured over every step before that validation (the first steps are often slower:
kernel selection, loader warm-up). The plan
is checkpointed with the module, so a resumed run keeps it instead of measuring again.
Lightning's own ``max_time`` stop stays in place as the hard limit."""
from __future__ import annotations

import logging
import math
import re
import time
from datetime import timedelta
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import Timer

from selfsup.config.loading import ConfigError

log = logging.getLogger(__name__)


def now() -> float:
    """The budget's clock (a function of its own, so a test can replace it)."""
    return time.perf_counter()


def budget_seconds(max_time: Any) -> Optional[float]:
    """``trainer.max_time`` (Lightning's ``DD:HH:MM:SS`` string or ``{minutes: 9, ...}`` dict) in
    seconds; None when unset."""
    if max_time is None:
        return None
    if isinstance(max_time, timedelta):
        return max_time.total_seconds()
    if isinstance(max_time, dict):
        return timedelta(**max_time).total_seconds()
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", str(max_time).strip())
    if not match:
        raise ConfigError(f"trainer.max_time={max_time!r}: expected DD:HH:MM:SS (e.g. 00:00:09:00) or a dict such as "
                          "{minutes: 9}")
    days, hours, minutes, seconds = (int(g) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()


class TimeBudget(L.Callback):
    """Plans the run's length from the measured step time (see the module docstring).

    ``reserve`` is the fraction of the remaining time kept back for what the measurement does
    not see (checkpoints, the last validation)."""

    def __init__(self, budget_s: float, measure_steps: int = 10, skip_steps: int = 1, reserve: float = 0.03):
        if budget_s <= 0 or measure_steps < 1 or skip_steps < 0 or not 0 <= reserve < 1:
            raise ValueError(f"invalid TimeBudget: budget_s={budget_s} measure_steps={measure_steps} "
                             f"skip_steps={skip_steps} reserve={reserve}")
        self.budget_s, self.measure_steps, self.skip_steps, self.reserve = budget_s, measure_steps, skip_steps, reserve
        self.step_time: Optional[float] = None
        self.validation_s = 0.0  # of the first validation during training, spread over its interval
        self.measuring, self.validated = False, False

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        self.before = timers[0].time_elapsed("train") if timers else 0.0  # a resumed run's earlier time
        self.start, self.first_step, self.t0 = now(), int(trainer.global_step), None
        self.cap = int(trainer.estimated_stepping_batches)  # max_steps / max_epochs, before the plan lowers it
        self.measuring = pl_module.planned_total_steps is None  # a resumed run keeps its checkpointed plan

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.measuring or self.step_time is not None:
            return
        done = int(trainer.global_step) - self.first_step
        if done == self.skip_steps:
            self.t0 = now()
        elif self.t0 is not None and done == self.skip_steps + self.measure_steps:
            self.step_time = (now() - self.t0) / self.measure_steps
            self.plan(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module) -> None:
        self.val_start = now()
        done = int(trainer.global_step) - self.first_step - self.skip_steps
        if self.measuring and self.step_time is not None and not self.validated and done > self.measure_steps:
            self.step_time = (self.val_start - self.t0) / done  # the steady state of every step so far

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if self.measuring and self.step_time is not None and not self.validated:
            self.validation_s, self.validated = now() - self.val_start, True
            self.plan(trainer, pl_module)

    def plan(self, trainer: L.Trainer, pl_module) -> None:
        step = int(trainer.global_step)
        remaining = self.budget_s - (self.before + now() - self.start)
        interval = trainer.val_check_batch if trainer.enable_validation else math.inf
        per_step = self.step_time + (self.validation_s / interval if math.isfinite(interval) else 0.0)
        more = max(0, math.floor(remaining * (1 - self.reserve) / per_step))
        total = max(step + 1, min(self.cap, step + more))
        total = int(trainer.strategy.broadcast(total, src=0))  # every DDP process stops at rank 0's step
        pl_module.set_planned_steps(total)
        log.info("time budget %.0f s: %.3f s/step over %d steps (+%.1f s validation) -> %d steps in all%s",
                 self.budget_s, self.step_time, self.measure_steps, self.validation_s, total,
                 " (the max_steps / max_epochs cap)" if total == self.cap else "")
