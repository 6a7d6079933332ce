"""The Lightning module every method trains in: views, loss, online probe, diagnostics."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from selfsup.data.splits import stratified_indices
from selfsup.engine.optim import (WarmupCosine, build_optimizer, group_lr, lr_scaling_factor, scheduled_weight_decay,
                                  set_weight_decay)
from selfsup.eval.diagnostics import embedding_std, effective_rank
from selfsup.eval.knn import knn_predict
from selfsup.methods.base import Method


def inputs_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float 0..1; float clips and signals as they are."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def compile_networks(method: Method) -> None:
    """``model.compile``: torch.compile every network of the method (the encoder, the heads, any
    momentum copies) in place, so parameter names, checkpoints and the exported encoder are
    those of the eager modules."""
    for child in method.children():
        if any(True for _ in child.parameters()):
            child.compile()


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite; the message says where and what to change."""


class SSLModule(L.LightningModule):
    """Runs a :class:`Method`: builds views on the device (outside autocast), computes the
    method's loss, trains an online linear probe on detached features of labelled samples and
    reports its accuracy on the validation split, and logs collapse diagnostics."""

    def __init__(self, cfg: DictConfig, method: Method, num_classes: int):
        super().__init__()
        self.cfg = cfg
        self.method = method
        self.probe = nn.Linear(method.encoder.feature_dim, num_classes) if num_classes > 0 else None
        self.channels_last = bool(cfg.model.channels_last) and method.ctx.spec.kind == "image"
        self.knn_bank: tuple[torch.Tensor, torch.Tensor] | None = None  # the kNN monitor's, each validation
        self.planned_total_steps: int | None = None  # a wall-time plan (engine.budget.TimeBudget), checkpointed
        self.planned_cap: int | None = None  # the max_steps / max_epochs cap the plan was made under
        lr_scaling_factor(str(cfg.optim.get("lr_scaling", "none")), 1)  # validated before the run folder is written
        if cfg.model.get("compile"):
            compile_networks(method)

    # -- data on the device -------------------------------------------------------------
    def step_generator(self) -> torch.Generator:
        """Augmentation randomness as a function of (seed, step, rank): a resumed run draws
        exactly the views an uninterrupted run would."""
        g = torch.Generator(device=self.device)
        g.manual_seed(int(self.cfg.seed) * 1_000_003 + self.global_step * 7_919 + self.global_rank)
        return g

    def to_memory_format(self, views):
        """Image batches (and lists of them) in channels-last layout when the encoder uses it:
        a mix of layouts sends convolutions down slow paths, bf16 on the CPU most of all."""
        if not self.channels_last:
            return views
        if isinstance(views, torch.Tensor):
            return views.contiguous(memory_format=torch.channels_last) if views.dim() == 4 else views
        if isinstance(views, (list, tuple)):
            return type(views)(self.to_memory_format(v) for v in views)
        return views

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        x = inputs_to_float(x)
        if self.trainer.training:
            return self.to_memory_format(self.method.make_views(x, self.step_generator())), y
        return self.to_memory_format(x), y

    # -- training -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int):
        views, labels = batch
        out = self.method.loss(views, labels)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLoss(self.non_finite_message(loss))
        total = loss + self.probe_loss(out["features"].detach(), labels)
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        self.log("train/epoch_loss", loss.detach(), on_step=False, on_epoch=True, sync_dist=True)
        for name, value in out.items():
            if name not in ("loss", "features", "embeddings") and value.dim() == 0:
                self.log(f"train/{name}", value.detach(), on_step=True, on_epoch=False)
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self.log_diagnostics(out.get("embeddings", out["features"]).detach())
        return total

    def non_finite_message(self, loss: torch.Tensor) -> str:
        """What happened, and advice that works: resume from the last (always finite) checkpoint
        with a lower learning rate, or, with no checkpoint yet, start again with one."""
        run_dir = self.cfg.run.dir
        lower = f"{float(self.cfg.optim.lr) / 10:g}"
        info = Path(run_dir, "checkpoints", "last.json")
        where = (f"the {self.cfg.method.name} loss is {loss.item()} at step {self.global_step} (epoch "
                 f"{self.current_epoch}). ")
        if info.exists():
            step = json.loads(info.read_text()).get("global_step")
            return where + (f"The last checkpoint (step {step}) holds finite weights: `selfsup train --resume {run_dir} "
                            f"optim.lr={lower}` continues from it with a lower learning rate (now {self.cfg.optim.lr}); "
                            "more optim.warmup_epochs or trainer.precision=32-true also help.")
        return where + (f"No checkpoint was written yet, so nothing is kept: train again with a lower optim.lr (now "
                        f"{self.cfg.optim.lr}, e.g. optim.lr={lower}), more optim.warmup_epochs, or "
                        "trainer.precision=32-true.")

    def probe_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labelled = labels >= 0
        if self.probe is None or not bool(labelled.any()):
            return features.new_zeros(())
        logits = self.probe(features[labelled].float())
        loss = F.cross_entropy(logits, labels[labelled])
        self.log("train/probe_loss", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def log_diagnostics(self, embeddings: torch.Tensor) -> None:
        self.log("train/embedding_std", embedding_std(embeddings.float()), on_step=True, on_epoch=False)
        self.log("train/effective_rank", effective_rank(embeddings.float()), on_step=True, on_epoch=False)

    def progress(self) -> float:
        """The fraction of the planned optimiser steps done, in [0, 1]."""
        return min(1.0, self.global_step / max(1, self.trainer.estimated_stepping_batches))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Before each step: the method's fractional epoch, and the scheduled weight decay."""
        batches = self.trainer.num_training_batches
        within = batch_idx / batches if 0 < batches < float("inf") else 0.0
        self.method.epoch = self.current_epoch + within
        if self.cfg.optim.weight_decay_end is not None:
            for optimizer in self.trainer.optimizers:
                set_weight_decay(optimizer, scheduled_weight_decay(self.cfg.optim, self.progress()))

    def on_before_optimizer_step(self, optimizer) -> None:
        self.method.before_optimizer_step()  # after backward, before Lightning clips the gradients

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.method.after_optimizer_step(self.progress())

    # -- validation: the online probe and the kNN monitor on the validation split ------------
    def on_validation_epoch_start(self) -> None:
        self.knn_bank = self.online_knn_bank()

    @torch.no_grad()
    def online_knn_bank(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(features [B, d] on the CPU, labels [B]) of at most ``eval.online_knn_samples``
        labelled pre-training samples (seeded, class-stratified; the same every epoch), encoded
        now, in eval mode; None when the monitor is off or there are too few labels."""
        count = int(self.cfg.eval.online_knn_samples)
        pretrain = self.trainer.datamodule.splits.pretrain
        labelled = torch.nonzero(pretrain.labels >= 0).flatten()
        if self.probe is None or count <= 0 or len(labelled) < 2:
            return None
        index = labelled[stratified_indices(pretrain.labels[labelled], count, int(self.cfg.seed))]
        step = int(self.cfg.data.batch_size)
        features = [self.method.encoder(self.to_memory_format(inputs_to_float(
            pretrain.load(index[i:i + step]).to(self.device)))).float().cpu() for i in range(0, len(index), step)]
        return torch.cat(features), pretrain.labels[index]

    def validation_step(self, batch, batch_idx: int):
        if self.probe is None:
            return
        x, y = batch
        with torch.no_grad():
            features = self.method.encoder(x).float()
            correct = (self.probe(features).argmax(1) == y).float()
        self.log("val/probe_top1", correct.mean(), on_epoch=True, sync_dist=True, prog_bar=True,
                 batch_size=len(y))
        if self.knn_bank is not None:
            bank, bank_labels = self.knn_bank
            k = max(1, min(int(self.cfg.eval.knn_k), len(bank_labels) - 1))
            scores = knn_predict(bank, bank_labels, features.cpu(), self.probe.out_features, k,
                                 float(self.cfg.eval.knn_temperature))
            self.log("val/knn_top1", (scores.argmax(1) == y.cpu()).float().mean().to(self.device), on_epoch=True,
                     sync_dist=True, batch_size=len(y))

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = build_optimizer(self.optim_config(), self.method, self.probe)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.planned_schedule())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def optim_config(self) -> DictConfig:
        """``optim.*`` with ``optim.lr`` scaled by ``optim.lr_scaling`` for the world batch."""
        optim = self.cfg.optim.copy()
        world_batch = int(self.cfg.data.batch_size) * int(self.trainer.world_size)
        optim.lr = float(optim.lr) * lr_scaling_factor(str(optim.get("lr_scaling", "none")), world_batch)
        return optim

    def planned_schedule(self) -> WarmupCosine:
        """Warm-up + cosine over the steps this trainer will run in all (a wall-time plan's, when
        there is one)."""
        total = self.planned_total_steps or int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        if self.trainer.max_epochs in (None, -1) or self.planned_total_steps:
            steps_per_epoch = max(1, len(self.trainer.datamodule.train_dataloader()))
        warmup = int(round(float(self.cfg.optim.warmup_epochs) * steps_per_epoch))
        return WarmupCosine(total, min(warmup, total), float(self.cfg.optim.min_lr_ratio))

    def on_train_start(self) -> None:
        """After a resume restored the schedule and optimiser: plan the schedule over this run's
        length (a run extended with a larger trainer.max_epochs / max_steps goes on along the
        longer cosine from where it is), apply the config's learning rates (an ``optim.lr``
        override on resume takes effect from the next step), and put the training loader where
        the checkpoint left it."""
        self.restore_loader_position()
        self.drop_stale_plan()
        if self.planned_total_steps:  # a resumed wall-time plan; trainer.max_steps / max_epochs still cap it
            self.set_planned_steps(min(self.planned_total_steps, int(self.trainer.estimated_stepping_batches)))
        else:
            self.apply_schedule()

    def drop_stale_plan(self) -> None:
        """Forget a checkpointed wall-time plan made under another length cap (a resume that
        changed trainer.max_epochs / max_steps): the run is planned again over its new length."""
        if self.planned_total_steps and self.planned_cap != int(self.trainer.estimated_stepping_batches):
            self.planned_total_steps = None

    def set_planned_steps(self, total: int) -> None:
        """Train ``total`` optimiser steps in all along a schedule planned over them."""
        self.planned_total_steps = int(total)
        self.planned_cap = int(self.trainer.estimated_stepping_batches)
        self.trainer.fit_loop.epoch_loop.max_steps = int(total)
        self.apply_schedule()

    def apply_schedule(self) -> None:
        plan = self.planned_schedule()
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            scheduler.lr_lambdas = [plan for _ in scheduler.lr_lambdas]
            optim = self.optim_config()
            scheduler.base_lrs = [group_lr(optim, g) for g in scheduler.optimizer.param_groups]
            for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * plan(self.global_step)

    # -- RNG state in checkpoints -----------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_torch"] = torch.get_rng_state()
        checkpoint["planned_total_steps"] = self.planned_total_steps
        checkpoint["planned_cap"] = self.planned_cap
        # the training loader's position (selfsup.data.loader.ResumableLoader) counts the batches
        # Lightning has trained on, not the one it prefetched: a mid-epoch resume starts after them
        fit = checkpoint.get("loops", {}).get("fit_loop", {})
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        for state in fit.get("state_dict", {}).get("combined_loader", []):
            if "batches" in state:
                state["batches"] = int(progress.processed)
        if progress.ready > progress.completed and "epoch_loop.state_dict" in fit:
            # saved as the next batch starts (RunCheckpoints' step checkpoints): this step is already
            # counted, and Lightning counts one more when it restarts from a point inside a step
            fit["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_torch" in checkpoint:
            torch.set_rng_state(checkpoint["rng_torch"])
        self.planned_total_steps = checkpoint.get("planned_total_steps")
        self.planned_cap = checkpoint.get("planned_cap")
        fit_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
        self.loader_states = list(fit_state.get("combined_loader", []))

    def restore_loader_position(self) -> None:
        """Give the training loader its checkpointed position. Lightning restores stateful loaders
        only if it sets up the data after the checkpoint is read, but ``estimated_stepping_batches``
        (the schedule's length, in configure_optimizers) sets it up before."""
        loader = self.trainer.train_dataloader
        states = getattr(self, "loader_states", [])
        if states and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(states[0])
        self.loader_states = []
