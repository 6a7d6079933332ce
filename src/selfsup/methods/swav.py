"""SwAV (Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
Features by Contrasting Cluster Assignments", NeurIPS 2020, arXiv 2006.09882): online clustering
of multi-crop views onto learned prototypes, each crop predicting the codes of the others.

The paper's defaults: projector Linear(2048)-BN-ReLU-Linear(128), L2 normalisation, 3,000
prototypes (L2-normalised after every step and frozen during the first epoch), codes from 3
Sinkhorn-Knopp iterations at epsilon 0.05 over the batch of every process, softmax temperature
0.1, multi-crop 2 x 224 + 6 x 96 (the recipe's ``augment.*``), and for small batches a queue of
the features of earlier batches in the Sinkhorn normalisation (3,840 features, from epoch 15 on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses import SwAVLoss
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.multi_crop import MultiCropMethod
from selfsup.models import EmbeddingQueue, Encoder, MLPHead


@dataclass
class SwAVParams(Params):
    temperature: float = 0.1  # tau of the softmax over a crop's prototype scores
    epsilon: float = 0.05  # entropy regularisation of the Sinkhorn-Knopp codes
    sinkhorn_iterations: int = 3  # Sinkhorn-Knopp normalisation rounds
    num_prototypes: int = 3000  # K
    proj_hidden_dim: int = 2048  # projector: Linear-BN-ReLU-Linear
    proj_dim: int = 128  # the L2-normalised embedding the prototypes score
    freeze_prototypes_epochs: int = 1  # epochs during which the prototypes get no update
    # earlier embeddings per global crop in the Sinkhorn normalisation (3,840 at small batches); 0 = none
    queue_length: int = 0
    queue_start_epoch: int = 15  # the queue is filled and used from this epoch on


class SwAV(MultiCropMethod):
    """Encoder + projector on every crop, L2-normalised embeddings z, prototype scores z C^T
    (C: ``prototypes``, rows of norm 1). Codes: Sinkhorn-Knopp on the scores of each global
    crop (with the queue's scores against the current prototypes once it is in use), their
    normalisation over the batch of every process. Loss: :class:`selfsup.losses.SwAVLoss`, every
    other crop predicting each global crop's codes. From ``queue_start_epoch`` on (with
    ``queue_length`` > 0) each global crop's embeddings enter its own queue after the loss (the
    queue gathers every process's rows, so it is the same everywhere); filled entries are used
    as soon as there are any (SwAV's code waits until its queue is full).

    ``features``: the encoder's features of the first global crop; ``embeddings``: its z."""

    Params = SwAVParams

    def __init__(self, params: SwAVParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        for name in ("num_prototypes", "proj_hidden_dim", "proj_dim"):
            if getattr(params, name) < 1:
                raise ValueError(f"method.{name} must be positive, got {getattr(params, name)}")
        if params.queue_length < 0 or params.freeze_prototypes_epochs < 0:
            raise ValueError("method.queue_length and method.freeze_prototypes_epochs must be >= 0, got "
                             f"{params.queue_length} and {params.freeze_prototypes_epochs}")
        self.projector = MLPHead([encoder.feature_dim, params.proj_hidden_dim, params.proj_dim])
        self.prototypes = nn.Linear(params.proj_dim, params.num_prototypes, bias=False)
        self.normalize_prototypes()
        self.queues = nn.ModuleList(EmbeddingQueue(params.queue_length, params.proj_dim)
                                    for _ in range(self.num_global_crops)) if params.queue_length else None
        self.criterion = SwAVLoss(params.temperature, params.epsilon, params.sinkhorn_iterations,
                                  self.num_global_crops, gather_distributed=True)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def queue_in_use(self) -> bool:
        return self.queues is not None and self.epoch >= self.params.queue_start_epoch

    @torch.no_grad()
    def queue_scores(self) -> Optional[list[Optional[torch.Tensor]]]:
        """Each global crop's queued embeddings scored against the current prototypes."""
        if not self.queue_in_use():
            return None
        return [self.prototypes(q.filled()[0]) if int(q.count) else None for q in self.queues]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features = self.encode_crops(views)
        z = F.normalize(self.projector(features), dim=1)
        scores = list(self.prototypes(z).chunk(len(views)))
        loss = self.criterion(scores, self.queue_scores())
        if self.training and self.queue_in_use():
            for i, queue in enumerate(self.queues):
                queue.enqueue(z[i * n:(i + 1) * n])
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}

    def before_optimizer_step(self) -> None:
        if self.epoch < self.params.freeze_prototypes_epochs:
            self.prototypes.weight.grad = None

    def after_optimizer_step(self, progress: float) -> None:
        self.normalize_prototypes()
