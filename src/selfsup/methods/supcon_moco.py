"""SupCon-MoCo: the partly labelled SupCon loss against a momentum encoder's queue of keys and
their labels (fastai self_supervised's SupConMOCO, ../shared/seeds/supcon.txt; MoCo: He et al.,
CVPR 2020; SupCon: Khosla et al., NeurIPS 2020)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses.supcon import check_unsup_method, supcon_queue_terms
from selfsup.methods.base import MethodContext
from selfsup.methods.moco import MoCo, MoCoParams
from selfsup.models import Encoder
from selfsup.models.momentum import EmbeddingQueue


@dataclass
class SupConMoCoParams(MoCoParams):
    temperature: float = 0.1  # Khosla et al.
    reg_lambda: float = 1.0  # weight of the supervised term (the seed's)
    unsup_class_id: int = -1  # the label of unlabelled samples (the data layer's -1)
    unsup_method: str = "all"  # 'all': every query in the self-supervised term; 'only': unlabelled ones


class SupConMoCo(MoCo):
    """MoCo whose queue also keeps each key's label. Queries of view 1 are contrasted with the
    keys of view 2 of the whole batch (gathered across processes) and the queue:
    L = L_unsup + reg_lambda * L_sup (:func:`selfsup.losses.supcon.supcon_queue_terms`), where
    the self-supervised positive is the query's own key and the supervised positives are the
    keys of its class in the batch and in the queue."""

    Params = SupConMoCoParams

    def __init__(self, params: SupConMoCoParams, encoder: Encoder, ctx: MethodContext):
        check_unsup_method(params.unsup_method)
        super().__init__(params, encoder, ctx)

    def make_queue(self) -> EmbeddingQueue:
        return EmbeddingQueue(self.params.queue_size, self.params.proj_dim, with_labels=True)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.params
        features, q, k = self.encode(views)
        queue, queue_labels = self.queue.filled()
        unsup, sup = supcon_queue_terms(q, k, labels, queue, queue_labels, p.temperature, p.unsup_class_id,
                                        p.unsup_method, gather_distributed=True)
        if self.training:
            self.queue.enqueue(k, labels)
        return {"loss": unsup + p.reg_lambda * sup, "features": features, "embeddings": q,
                "loss_unsup": unsup.detach(), "loss_sup": sup.detach()}
