"""Test driver: `python killed_run.py WHEN key=value ...` trains like `selfsup train` and
SIGKILLs itself at WHEN: `epoch:N` right after the checkpoint at the end of epoch N is written,
`step:N` after optimiser step N, as step N + 1 starts (after its checkpoint, with
trainer.ckpt_every_n_steps), or
`fit_end` when training has finished but before the encoder export and the evaluation."""
import os
import signal
import sys

import lightning as L

from selfsup.engine.configure import compose_config
from selfsup.engine.train import train


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    def __init__(self, when: str):
        self.when = when

    def on_train_epoch_end(self, trainer, pl_module):
        if self.when == f"epoch:{trainer.current_epoch}":
            die()

    def on_train_batch_start(self, trainer, *args):
        if self.when == f"step:{trainer.global_step}":
            die()

    def on_fit_end(self, trainer, pl_module):
        if self.when == "fit_end":
            die()


if __name__ == "__main__":
    train(compose_config(None, sys.argv[2:]), callbacks=[KillAt(sys.argv[1])])
