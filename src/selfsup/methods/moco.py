"""MoCo v2 (He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020; Chen, Fan, Girshick, He, "Improved Baselines with Momentum
Contrastive Learning", arXiv 2003.04297)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfsup.losses.infonce import check_temperature, info_nce
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, MLPHead
from selfsup.models.momentum import EmbeddingQueue, MomentumNetwork, check_momentum, scheduled_momentum


@dataclass
class MoCoParams(Params):
    temperature: float = 0.2  # MoCo v2 (0.07 in MoCo v1)
    queue_size: int = 65536  # K, the number of negatives kept
    momentum: float = 0.999  # m of the key encoder's EMA
    momentum_cosine: bool = False  # raise m from `momentum` to 1 along a cosine (BYOL's schedule)
    proj_hidden_dim: int = 2048  # MoCo v2's MLP head: fc-ReLU-fc, no BatchNorm
    proj_dim: int = 128


class MoCo(TwoViewMethod):
    """Queries: encoder + MLP head on view 1. Keys: a momentum (EMA) copy of both on view 2,
    L2-normalised. Loss: InfoNCE of each query against its key and a queue of the keys of the
    last ``queue_size`` samples (gathered from every process before enqueueing; kept in
    buffers, so it is checkpointed). The momentum copy is updated after every optimiser step.

    Not implemented: MoCo's shuffling BatchNorm across GPUs (under DDP each process's key
    encoder normalises over its own keys)."""

    Params = MoCoParams

    def __init__(self, params: MoCoParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_temperature(params.temperature)
        check_momentum(params.momentum)
        self.projector = MLPHead([encoder.feature_dim, params.proj_hidden_dim, params.proj_dim], batch_norm=False)
        self.target = MomentumNetwork(self.encoder, self.projector)
        self.queue = self.make_queue()

    def make_queue(self) -> EmbeddingQueue:
        return EmbeddingQueue(self.params.queue_size, self.params.proj_dim)

    def encode(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features of view 1, queries of view 1, normalised keys of view 2)."""
        features = self.encoder(views[0])
        return features, self.projector(features), F.normalize(self.target(views[1]), dim=1)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        features, q, k = self.encode(views)
        loss = info_nce(q, k, self.queue.filled()[0], self.params.temperature)
        if self.training:
            self.queue.enqueue(k)
        return {"loss": loss, "features": features, "embeddings": q}

    def after_optimizer_step(self, progress: float) -> None:
        m = scheduled_momentum(self.params.momentum, progress, self.params.momentum_cosine)
        self.target.update([self.encoder, self.projector], m)
