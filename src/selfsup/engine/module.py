"""The Lightning module every method trains in: views, loss, online probe, diagnostics."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from selfsup.engine.optim import WarmupCosine, build_optimizer
from selfsup.eval.diagnostics import embedding_std, effective_rank
from selfsup.methods.base import Method


def inputs_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float 0..1; float clips and signals as they are."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


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
            raise NonFiniteLoss(
                f"the {self.cfg.method.name} loss is {loss.item()} at step {self.global_step} (epoch "
                f"{self.current_epoch}). Lower optim.lr (now {self.cfg.optim.lr}), add optim.warmup_epochs, or use "
                "trainer.precision=32-true; the last checkpoint is intact, so `selfsup train --resume RUN_DIR "
                "optim.lr=...` continues from it."
            )
        total = loss + self.probe_loss(out["features"].detach(), labels)
        self.log("train/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/epoch_loss", loss.detach(), on_step=False, on_epoch=True, sync_dist=True)
        for name, value in out.items():
            if name not in ("loss", "features", "embeddings") and value.dim() == 0:
                self.log(f"train/{name}", value.detach(), on_step=True, on_epoch=False)
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self.log_diagnostics(out.get("embeddings", out["features"]).detach())
        return total

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

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        total = max(1, self.trainer.estimated_stepping_batches)
        self.method.after_optimizer_step(min(1.0, self.global_step / total))

    # -- validation: the online probe on the validation split -------------------------------
    def validation_step(self, batch, batch_idx: int):
        if self.probe is None:
            return
        x, y = batch
        with torch.no_grad():
            correct = (self.probe(self.method.encoder(x).float()).argmax(1) == y).float()
        self.log("val/probe_top1", correct.mean(), on_epoch=True, sync_dist=True, prog_bar=True,
                 batch_size=len(y))

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = build_optimizer(self.cfg.optim, self.method, self.probe)
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total // max(1, self.trainer.max_epochs or 1))
        if self.trainer.max_epochs in (None, -1):
            steps_per_epoch = max(1, len(self.trainer.datamodule.train_dataloader()))
        warmup = int(round(float(self.cfg.optim.warmup_epochs) * steps_per_epoch))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupCosine(total, min(warmup, total), float(self.cfg.optim.min_lr_ratio))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- RNG state in checkpoints -----------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_torch"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_torch" in checkpoint:
            torch.set_rng_state(checkpoint["rng_torch"])
