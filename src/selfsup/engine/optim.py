"""Optimisers (SGD, LARS, AdamW) and the warm-up + cosine learning-rate schedule."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from selfsup.config.schema import OptimConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You, Gitman, Ginsburg, "Large Batch Training of
    Convolutional Networks", 2017), as used by SimCLR and BYOL.

    For each parameter p with gradient g in an adapted group:
        g' = g + weight_decay * p
        trust = trust_coefficient * ||p|| / ||g'||   (1 when either norm is 0)
        v = momentum * v + trust * g'
        p = p - lr * v
    Groups with ``lars_exclude=True`` (biases, normalisation layers, the online probe) take a
    plain momentum-SGD step without weight decay or trust ratio."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001):
        if lr < 0 or momentum < 0 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(f"invalid LARS settings: lr={lr} momentum={momentum} weight_decay={weight_decay} "
                             f"trust_coefficient={trust_coefficient}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars_exclude=False)
        super().__init__(params, defaults)

    @staticmethod
    def trust_ratio(p: torch.Tensor, update: torch.Tensor, trust_coefficient: float) -> torch.Tensor:
        p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
        ratio = trust_coefficient * p_norm / u_norm
        return torch.where((p_norm > 0) & (u_norm > 0), ratio, torch.ones_like(ratio))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if not group["lars_exclude"]:
                    update = update.add(p, alpha=group["weight_decay"])
                    update = update * self.trust_ratio(p, update, group["trust_coefficient"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(update).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def exclude_from_decay(name: str, p: nn.Parameter) -> bool:
    """Biases and normalisation parameters (1-D) get no weight decay and no LARS adaptation."""
    return p.ndim <= 1


def build_optimizer(cfg: OptimConfig, model: nn.Module, probe: nn.Module | None) -> torch.optim.Optimizer:
    """The optimiser of ``optim.name`` over the model's trainable parameters (weights decayed,
    biases and norms not) and the online probe (its own learning rate, no decay)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if exclude_from_decay(name, p) else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]
    if probe is not None:
        probe_lr = cfg.probe_lr if cfg.probe_lr is not None else (1e-3 if cfg.name == "adamw" else 0.1)
        groups.append({"params": list(probe.parameters()), "weight_decay": 0.0, "lars_exclude": True, "lr": probe_lr})
    if cfg.name == "sgd":
        return torch.optim.SGD([_drop_lars(g) for g in groups], lr=cfg.lr, momentum=cfg.momentum)
    if cfg.name == "lars":
        return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, trust_coefficient=cfg.trust_coefficient)
    if cfg.name == "adamw":
        return torch.optim.AdamW([_drop_lars(g) for g in groups], lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optim.name {cfg.name!r}; valid: sgd, lars, adamw")


def _drop_lars(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "lars_exclude"}


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear from 1/warmup to 1 over ``warmup_steps``, then a cosine
    from 1 to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine:
    """A picklable LambdaLR multiplier (plain data, so it checkpoints as state)."""

    def __init__(self, total_steps: int, warmup_steps: int, min_ratio: float):
        self.total_steps, self.warmup_steps, self.min_ratio = total_steps, warmup_steps, min_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.min_ratio)
