"""The training budget of a benchmark table, the same for every method in one of three ways:

- ``steps``: the same number of optimiser steps (each method at its recipe's batch size, so the
  images seen differ: SimCLR 256 per step, RotNet 128, exemplar 64);
- ``images``: the same number of images seen, ``ceil(images / data.batch_size)`` steps for each
  recipe at its own batch size (``data.batch_size`` counts source images, before a method's views,
  rotations or patches);
- ``time``: the same training wall time, ``trainer.max_time`` (the run plans its steps to fit the
  time and fits its learning-rate schedule to them, see ``selfsup.engine.budget``; the epochs
  capped at ``TIME_EPOCH_CAP``, far beyond what the time allows).

Used by bench/pretext_table.py and bench/compare_methods.py (``--match``)."""
from __future__ import annotations

import math
from typing import Sequence

BUDGETS = ("steps", "images", "time")
# --match time: the time budget needs a finite length to plan within (its cap); one the time always reaches first
TIME_EPOCH_CAP = 10000


def budget_overrides(recipe: str, match: str, amount: float, overrides: Sequence[str] = ()) -> list[str]:
    """The ``trainer.*`` overrides that give ``recipe`` (with ``overrides``) ``amount`` steps,
    images seen or seconds of training, by ``match``."""
    if amount <= 0:
        raise ValueError(f"a {match} budget must be positive, got {amount}")
    if match == "steps":
        return [f"trainer.max_steps={int(amount)}", "trainer.max_epochs=-1"]
    if match == "images":
        from selfsup.engine.configure import compose_config

        batch = int(compose_config(recipe, overrides).data.batch_size)
        return [f"trainer.max_steps={math.ceil(amount / batch)}", "trainer.max_epochs=-1"]
    if match == "time":
        minutes, seconds = divmod(int(amount), 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        return ["trainer.max_steps=-1", f"trainer.max_epochs={TIME_EPOCH_CAP}",
                f"trainer.max_time={days:02d}:{hours:02d}:{minutes:02d}:{seconds:02d}"]
    raise ValueError(f"unknown budget {match!r}; valid: {', '.join(BUDGETS)}")


def budget_tag(match: str, amount: float) -> str:
    """A run-folder tag for a budget: '' for steps (the folders' old names), 'images30000', 'time600s'."""
    return {"steps": "", "images": f"-images{int(amount)}", "time": f"-time{int(amount)}s"}[match]
