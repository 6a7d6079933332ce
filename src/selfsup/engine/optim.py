"""Optimisers (SGD, LARS, AdamW) over parameter groups (decay or not, per-module learning-rate
scales), the warm-up + cosine learning-rate schedule and the weight-decay schedule."""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import nn

from selfsup.config.loading import ConfigError, closest_keys_message
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


def lr_scale_of(name: str, scales: Mapping[str, float]) -> float:
    """The learning-rate multiplier of parameter ``name``: that of the innermost module named in
    ``scales`` that holds it (``predictor`` covers ``predictor.net.0.weight``), else 1."""
    holders = [k for k in scales if name == k or name.startswith(k + ".")]
    return float(scales[max(holders, key=len)]) if holders else 1.0


def check_lr_scales(scales: Mapping[str, float], model: nn.Module) -> None:
    """Every ``optim.lr_scales`` key must name a module of ``model`` and scale by a number >= 0."""
    modules = {name for name, _ in model.named_modules() if name}
    for key, scale in scales.items():
        if key not in modules:
            top = [f"optim.lr_scales.{name}" for name, _ in model.named_children()]
            raise ConfigError(closest_keys_message(f"optim.lr_scales.{key}", top) + " (or their submodules)")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
            raise ConfigError(f"optim.lr_scales.{key} must be a number >= 0, got {scale!r}")


def build_optimizer(cfg: OptimConfig, model: nn.Module, probe: nn.Module | None) -> torch.optim.Optimizer:
    """The optimiser of ``optim.name`` over the model's trainable parameters (weights decayed,
    biases and norms not; ``decayed`` marks the groups :func:`set_weight_decay` schedules), each
    at ``optim.lr`` times its module's ``optim.lr_scales`` entry (``lr_scale``), and the online
    probe (its own learning rate, no decay). Groups: ``decay``, ``no_decay``, then one pair per
    other scale (``decay@x10``, ...), then ``probe``."""
    scales = dict(cfg.lr_scales or {})
    check_lr_scales(scales, model)
    grouped: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (not exclude_from_decay(name, p), lr_scale_of(name, scales))
            grouped.setdefault(key, []).append(p)
    groups = [{"params": params, "weight_decay": cfg.weight_decay if decayed else 0.0, "lars_exclude": not decayed,
               "decayed": decayed, "lr_scale": scale, "lr": cfg.lr * scale,
               "name": ("decay" if decayed else "no_decay") + ("" if scale == 1.0 else f"@x{scale:g}")}
              for (decayed, scale), params in grouped.items() if params or scale == 1.0]
    if probe is not None:
        groups.append({"params": list(probe.parameters()), "weight_decay": 0.0, "lars_exclude": True, "name": "probe",
                       "decayed": False, "lr": probe_learning_rate(cfg)})
    if cfg.name == "sgd":
        return torch.optim.SGD([_drop_lars(g) for g in groups], lr=cfg.lr, momentum=cfg.momentum)
    if cfg.name == "lars":
        return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, trust_coefficient=cfg.trust_coefficient)
    if cfg.name == "adamw":
        return torch.optim.AdamW([_drop_lars(g) for g in groups], lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"unknown optim.name {cfg.name!r}; valid: sgd, lars, adamw")


LR_SCALING_REFERENCE_BATCH = 256


def lr_scaling_factor(rule: str, world_batch: int) -> float:
    """The multiplier of ``optim.lr`` for a world batch (batch_size x devices x num_nodes) under
    ``optim.lr_scaling``: ``none`` 1; ``linear`` B/256 (Goyal et al., "Accurate, Large Minibatch
    SGD", 2017; SimCLR's 0.3 x B/256); ``sqrt`` sqrt(B/256) (SimCLR's rule for LARS at large B)."""
    ratio = world_batch / LR_SCALING_REFERENCE_BATCH
    factors = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}
    if rule not in factors:
        raise ConfigError(f"optim.lr_scaling={rule!r}; valid: {', '.join(factors)}")
    return factors[rule]


def probe_learning_rate(cfg: OptimConfig) -> float:
    return cfg.probe_lr if cfg.probe_lr is not None else (1e-3 if cfg.name == "adamw" else 0.1)


def group_lr(cfg: OptimConfig, group: dict) -> float:
    """The base learning rate of a parameter group of :func:`build_optimizer`."""
    return probe_learning_rate(cfg) if group.get("name") == "probe" else cfg.lr * group.get("lr_scale", 1.0)


def cosine_ramp(start: float, end: float, progress: float) -> float:
    """From ``start`` at progress 0 to ``end`` at 1 along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def scheduled_weight_decay(cfg: OptimConfig, progress: float) -> float:
    """``optim.weight_decay`` throughout, or with ``optim.weight_decay_end`` a cosine from it to
    that value over training (DINO, Caron et al. 2021: 0.04 -> 0.4); ``progress`` in [0, 1]."""
    if cfg.weight_decay_end is None:
        return cfg.weight_decay
    return cosine_ramp(cfg.weight_decay, cfg.weight_decay_end, progress)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """The weight decay of every ``decayed`` group of :func:`build_optimizer` (biases, norms and
    the probe stay undecayed)."""
    for group in optimizer.param_groups:
        if group.get("decayed"):
            group["weight_decay"] = weight_decay


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
