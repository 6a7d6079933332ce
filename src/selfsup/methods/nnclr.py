"""NNCLR (Dwibedi, Aytar, Tompson, Sermanet, Zisserman, "With a Little Help from My Friends:
Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021, arXiv 2104.14548):
contrastive learning whose positive for a view is the nearest neighbour of its embedding in a
support set of past embeddings, not the embedding of the other view.

The paper's defaults (sec. 3 and the implementation details): temperature 0.1, a support set of
98,304 embeddings, a 3-layer projector (hidden 2048, output 256, BatchNorm) and a 2-layer
predictor (hidden 4096), the loss made symmetric. The optimiser (LARS at large batches in the
paper) is the recipe's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses import nnclr_loss
from selfsup.losses.infonce import check_temperature
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import EmbeddingQueue, Encoder, MLPHead


@dataclass
class NNCLRParams(Params):
    temperature: float = 0.1  # tau of the contrastive loss
    queue_size: int = 98304  # support set: the view-1 projections of the last batches
    proj_hidden_dim: int = 2048  # projector: 3 layers, BN on each (the output's affine-free)
    proj_dim: int = 256  # the space of the support set and the predictions
    pred_hidden_dim: int = 4096  # predictor: proj_dim -> hidden (BN, ReLU) -> proj_dim


class NNCLR(TwoViewMethod):
    """Encoder, projector and predictor on both views. Loss: :func:`selfsup.losses.nnclr_loss`,
    the nearest neighbour (cosine) of each view's projection in the support set against the
    other view's prediction, symmetrised, with the negatives of every process. The support set
    (:class:`selfsup.models.EmbeddingQueue`, gathered from every process so it is the same
    everywhere) takes the view-1 projections after each training step; the very first batch is
    enqueued before its lookup, so the support set is never empty.

    ``features``: the encoder's features of view 1; ``embeddings``: its projections."""

    global_batchnorm = True  # SimCLR's projector and global BN (Dwibedi et al. 2021)

    Params = NNCLRParams

    def __init__(self, params: NNCLRParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_temperature(params.temperature)
        h = params.proj_hidden_dim
        self.projector = MLPHead([encoder.feature_dim, h, h, params.proj_dim], last_bn=True)
        self.predictor = MLPHead([params.proj_dim, params.pred_hidden_dim, params.proj_dim])
        self.queue = EmbeddingQueue(params.queue_size, params.proj_dim)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        p = self.predictor(z)
        first = int(self.queue.count) == 0
        if first:  # nearest neighbours need a support set: the first batch looks itself up
            self.queue.enqueue(z[:n])
        loss = nnclr_loss(z[:n], z[n:], p[:n], p[n:], self.queue.filled()[0], self.params.temperature,
                          gather_distributed=True)
        if self.training and not first:
            self.queue.enqueue(z[:n])
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
