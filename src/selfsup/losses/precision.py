"""Losses whose logits or statistics must not be computed in bf16 / fp16."""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, TypeVar

import torch

Fn = TypeVar("Fn", bound=Callable)


def _at_least_float32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.promote_types(value.dtype, torch.float32))
    return value


def float32_compute(fn: Fn) -> Fn:
    """Run ``fn`` with autocast off and its floating-point tensor arguments raised to float32
    (float64 stays float64), so its matmuls and reductions run in float32 under bf16 / fp16
    mixed precision and it returns float32 (as autocast's own losses, e.g. cross_entropy, do).

    Why: a softmax over logits from a bf16 matmul (8-bit mantissa), or a cross-correlation
    summed in bf16, carries a 1e-3 relative error into the loss. Gradients flow back to the
    inputs in their own dtype."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        devices = [v.device.type for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
        device = devices[0] if devices else "cpu"
        off = (torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device)
               else contextlib.nullcontext())
        with off:
            return fn(*map(_at_least_float32, args), **{k: _at_least_float32(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
