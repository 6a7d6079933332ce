"""A quiet console: selfsup's own lines on stdout, Lightning's progress bar on stderr, and
Lightning's tips, info lines, model summary and warnings silenced unless ``--verbose``
(``SELFSUP_VERBOSE=1``, which processes launched by DDP inherit)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

from lightning.pytorch.callbacks import TQDMProgressBar

VERBOSE_ENV = "SELFSUP_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_lightning() -> None:
    """Lightning's INFO lines (tips, "GPU available", ...) and its warnings off, unless verbose."""
    if verbose():
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


class StderrProgressBar(TQDMProgressBar):
    """Lightning's progress bar drawn on stderr, so stdout carries only selfsup's lines."""

    @staticmethod
    def on_stderr(make):
        with contextlib.redirect_stdout(sys.stderr):
            return make()

    def init_train_tqdm(self):
        return self.on_stderr(super().init_train_tqdm)

    def init_validation_tqdm(self):
        return self.on_stderr(super().init_validation_tqdm)

    def init_sanity_tqdm(self):
        return self.on_stderr(super().init_sanity_tqdm)
