"""Momentum (EMA) copies of networks and queues of past embeddings (MoCo, BYOL, SupCon-MoCo)."""
from __future__ import annotations

import copy
import itertools
import math
from typing import Optional, Sequence

import torch
from torch import nn

from selfsup.core.distributed import gather_no_grad


def check_momentum(momentum: float) -> None:
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule (Grill et al. 2020, sec. 3.2): tau = 1 - (1 - base) (cos(pi p) + 1) / 2
    for training progress p in [0, 1], rising from ``base`` at the start to 1 at the end."""
    check_momentum(base)
    if not 0 <= progress <= 1:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


def scheduled_momentum(base: float, progress: float, cosine: bool) -> float:
    """``base`` throughout, or with ``cosine`` :func:`cosine_momentum` at ``progress``."""
    return cosine_momentum(base, progress) if cosine else base


@torch.no_grad()
def ema_update(target: Sequence[nn.Parameter], online: Sequence[nn.Parameter], momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter (MoCo,
    He et al. 2020, eq. 2; BYOL's target update)."""
    check_momentum(momentum)
    target, online = list(target), list(online)
    if len(target) != len(online) or any(t.shape != o.shape for t, o in zip(target, online)):
        raise ValueError("the momentum copy and the online network have different parameters; build the copy "
                         "from the same modules, in the same order, that are passed to update()")
    for t, o in zip(target, online):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)


class MomentumNetwork(nn.Module):
    """A frozen copy of ``modules`` applied in sequence (e.g. encoder then projector), kept as an
    exponential moving average of the online modules with :meth:`update`.

    Its parameters never require gradients; its buffers (BatchNorm statistics) are its own,
    computed on the batches it sees, as in MoCo and BYOL. It is a submodule of the method, so
    it is saved in and restored from checkpoints."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        if not modules:
            raise ValueError("MomentumNetwork needs at least one module to copy")
        self.net = nn.Sequential(*(copy.deepcopy(m) for m in modules))
        self.net.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def update(self, modules: Sequence[nn.Module], momentum: float) -> None:
        """EMA step towards ``modules`` (the online modules this copy was built from)."""
        online = itertools.chain.from_iterable(m.parameters() for m in modules)
        ema_update(self.net.parameters(), online, momentum)


class EmbeddingQueue(nn.Module):
    """A first-in-first-out queue of the last ``size`` embeddings (and optionally their labels),
    MoCo's dictionary (He et al. 2020, sec. 3.2).

    Everything lives in buffers (``embeddings`` [size, dim], ``labels`` [size], ``ptr`` the next
    slot, ``count`` the filled slots), so a checkpoint saves and restores the queue. Entries
    are written in order at ``ptr`` and wrap around; only filled entries are ever used
    (:meth:`filled`), so an unfilled queue contributes no fake negatives. Under DDP every
    process enqueues the embeddings of all processes (gathered in rank order), so the queues
    stay identical."""

    def __init__(self, size: int, dim: int, with_labels: bool = False):
        super().__init__()
        if size <= 0 or dim <= 0:
            raise ValueError(f"a queue needs a positive size and dim, got size={size}, dim={dim}")
        self.size = size
        self.register_buffer("embeddings", torch.zeros(size, dim))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long) if with_labels else None)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: Optional[torch.Tensor] = None) -> None:
        """Append ``embeddings`` [B, dim] (with ``labels`` [B] when the queue keeps labels) from
        every process, overwriting the oldest entries; of a batch larger than the queue only
        the last ``size`` rows are kept."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.embeddings.shape[1]:
            raise ValueError(f"enqueue takes [B, {self.embeddings.shape[1]}] embeddings, got {tuple(embeddings.shape)}")
        if (labels is None) != (self.labels is None):
            raise ValueError("this queue " + ("keeps labels: pass them" if self.labels is not None
                                              else "keeps no labels: build it with with_labels=True"))
        if labels is not None and labels.shape != embeddings.shape[:1]:
            raise ValueError(f"enqueue needs one label per embedding, got {tuple(labels.shape)} for {embeddings.shape[0]}")
        embeddings = gather_no_grad(embeddings.detach())
        labels = None if labels is None else gather_no_grad(labels)
        total = embeddings.shape[0]
        keep = min(total, self.size)
        start = (int(self.ptr) + total - keep) % self.size
        slots = (start + torch.arange(keep, device=self.embeddings.device)) % self.size
        self.embeddings[slots] = embeddings[total - keep:].to(self.embeddings.dtype)
        if labels is not None:
            self.labels[slots] = labels[total - keep:].to(self.labels.dtype)
        self.ptr.fill_((start + keep) % self.size)
        self.count.fill_(min(int(self.count) + total, self.size))

    def filled(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(embeddings [n, dim], labels [n] or None) of the n filled entries, in slot order."""
        n = int(self.count)
        return self.embeddings[:n], None if self.labels is None else self.labels[:n]
