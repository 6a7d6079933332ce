"""A wall-time budget (``trainer.max_time``) turned into a number of optimiser steps, so the
learning-rate schedule is a complete warm-up + cosine over what fits in the time.

:class:`TimeBudget` times optimiser steps early in training (after ``skip_steps`` that pay for
allocation and caches), then plans ``steps done + remaining time / time per step`` steps in all
(capped by ``trainer.max_steps`` / ``max_epochs``): the module's schedule and the trainer's
``max_steps`` follow that plan (:meth:`SSLModule.set_planned_steps`). The plan is made again
after every validation, from the speed of the steps since the previous validation (for the
first, since step ``skip_steps``: the first steps are often slower, kernel selection and
loader warm-up) and the mean validation time spread over the steps between validations, so a
machine that slows down part-way (another job starts) shortens the cosine instead of being cut
off before its end. A new plan within ``REPLAN_TOLERANCE`` of the current one (inside the
reserve) leaves the schedule alone. The plan is checkpointed with the module, so a resumed run
keeps it instead of measuring again, unless the resume changed the length cap
(``trainer.max_epochs`` / ``max_steps``): then it measures and plans again. Lightning's own ``max_time`` stop stays in place as the hard limit."""
from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import Timer

from selfsup.config.loading import ConfigError

log = logging.getLogger(__name__)

REPLAN_TOLERANCE = 0.01  # a later plan changes the schedule only when it moves by more than this (below the reserve)


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
    if isinstance(max_time, Mapping):  # a dict, or the config's DictConfig of a command-line {minutes: 9}
        return timedelta(**dict(max_time)).total_seconds()
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
        self.validation_s = 0.0  # the mean validation during training, spread over its interval
        self.validation_total, self.validations = 0.0, 0  # since the measurement began
        self.mark: tuple[float, int] = (0.0, 0)  # (time, step) the current step time is measured from
        self.measuring = False

    def on_train_start(self, trainer: L.Trainer, pl_module) -> None:
        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        self.before = timers[0].time_elapsed("train") if timers else 0.0  # a resumed run's earlier time
        self.start, self.first_step, self.t0 = now(), int(trainer.global_step), None
        self.cap = int(trainer.estimated_stepping_batches)  # max_steps / max_epochs, before the plan lowers it
        pl_module.drop_stale_plan()  # a resume that changed the length plans again
        self.measuring = pl_module.planned_total_steps is None  # a resumed run keeps its checkpointed plan

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.measuring or self.step_time is not None:
            return
        done = int(trainer.global_step) - self.first_step
        if done == self.skip_steps:
            self.t0 = now()
            self.mark = (self.t0, int(trainer.global_step))
        elif self.t0 is not None and done == self.skip_steps + self.measure_steps:
            self.step_time = (now() - self.t0) / self.measure_steps
            self.plan(trainer, pl_module)

    def on_validation_start(self, trainer: L.Trainer, pl_module) -> None:
        self.val_start = now()
        if self.measuring and self.step_time is not None:
            mark_time, mark_step = self.mark
            done = int(trainer.global_step) - mark_step
            if done >= self.measure_steps:  # the speed of the steps since the last validation
                self.step_time = (self.val_start - mark_time) / done

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        if not self.measuring or self.t0 is None:
            return
        end = now()
        self.validation_total += end - self.val_start
        self.validations += 1
        self.validation_s = self.validation_total / self.validations
        self.mark = (end, int(trainer.global_step))
        if self.step_time is not None:
            self.plan(trainer, pl_module)

    def plan(self, trainer: L.Trainer, pl_module) -> None:
        step = int(trainer.global_step)
        remaining = self.budget_s - (self.before + now() - self.start)
        interval = trainer.val_check_batch if trainer.enable_validation else math.inf
        per_step = self.step_time + (self.validation_s / interval if math.isfinite(interval) else 0.0)
        more = max(0, math.floor(remaining * (1 - self.reserve) / per_step))
        total = min(self.cap, max(step + 1, step + more))  # never past max_steps / max_epochs
        total = int(trainer.strategy.broadcast(total, src=0))  # every DDP process stops at rank 0's step
        before = pl_module.planned_total_steps
        if before is not None and abs(total - before) <= REPLAN_TOLERANCE * before:
            return  # within the reserve: not worth a change of schedule
        pl_module.set_planned_steps(total)
        log.info("time budget %.0f s: %.3f s/step at step %d (+%.1f s a validation) -> %d steps in all%s",
                 self.budget_s, self.step_time, step, self.validation_s, total,
                 " (the max_steps / max_epochs cap)" if total == self.cap else "")
