"""DINO (Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin, "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021, arXiv 2104.14294): self-distillation of an
EMA teacher into the student across multi-crop views, with the teacher's outputs centred and
sharpened.

The paper's defaults (its sec. 3.1 and appendix / implementation details): a 3-layer MLP head
(hidden 2048, GELU, bottleneck 256), L2 normalisation, then a weight-normalised linear layer of
K = 65,536 outputs with its norm fixed to 1 and frozen during the first epoch; student
temperature 0.1, teacher temperature warmed up linearly from 0.04 to 0.07 over 30 epochs,
centre momentum 0.9; teacher EMA rising from 0.996 to 1 along a cosine. The optimiser side
(AdamW, weight decay cosine 0.04 -> 0.4, gradient clipping 3.0) is the recipe's:
``optim.weight_decay_end`` and ``trainer.gradient_clip_val``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.losses import DINOLoss
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.multi_crop import MultiCropMethod
from selfsup.models import Encoder, MomentumNetwork
from selfsup.models.momentum import check_momentum, scheduled_momentum


@dataclass
class DINOParams(Params):
    out_dim: int = 65536  # K, outputs (prototypes) of the weight-normalised last layer
    hidden_dim: int = 2048  # the head's two hidden layers (Linear-GELU)
    bottleneck_dim: int = 256  # the head's MLP output, L2-normalised before the last layer
    student_temp: float = 0.1  # tau_s
    teacher_temp_start: float = 0.04  # tau_t at the start of its linear warm-up
    teacher_temp_end: float = 0.07  # tau_t after the warm-up
    teacher_temp_warmup_epochs: float = 30  # epochs of the tau_t warm-up
    center_momentum: float = 0.9  # m of the centre's EMA (over the batch of every process)
    momentum: float = 0.996  # lambda_base of the teacher's EMA
    momentum_cosine: bool = True  # lambda rises from lambda_base to 1 along a cosine
    freeze_last_layer: int = 1  # epochs during which the last layer gets no update


class DINOHead(nn.Module):
    """Linear-GELU-Linear-GELU-Linear to ``bottleneck_dim``, L2 normalisation, then a linear
    layer without bias whose weight rows are normalised to norm 1 in every forward pass (weight
    normalisation with the norm g fixed at 1): output k is the cosine between the bottleneck
    and prototype k."""

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int):
        super().__init__()
        for name, value in (("hidden_dim", hidden_dim), ("bottleneck_dim", bottleneck_dim), ("out_dim", out_dim)):
            if value < 1:
                raise ValueError(f"method.{name} must be positive, got {value}")
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = nn.Linear(bottleneck_dim, out_dim, bias=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck [N, bottleneck_dim]."""
        return F.normalize(self.mlp(x), dim=1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """The last layer on bottleneck embeddings: [N, out_dim]."""
        return F.linear(z, F.normalize(self.last_layer.weight, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(self.embed(x))


class DINO(MultiCropMethod):
    """Student: encoder + :class:`DINOHead` on every crop. Teacher: an EMA copy of both on the
    global crops, updated after every optimiser step. Loss: :class:`selfsup.losses.DINOLoss`
    over every (teacher global crop, other student crop) pair, with the centre all-reduced over
    the processes and the teacher temperature at the current fractional epoch. The last layer's
    gradients are dropped during the first ``freeze_last_layer`` epochs.

    ``features``: the encoder's features of the first global crop; ``embeddings``: the student's
    normalised bottleneck of that crop (where the prototypes compare)."""

    Params = DINOParams

    def __init__(self, params: DINOParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        check_momentum(params.momentum)
        if params.freeze_last_layer < 0:
            raise ValueError(f"method.freeze_last_layer must be >= 0 epochs, got {params.freeze_last_layer}")
        self.head = DINOHead(encoder.feature_dim, params.hidden_dim, params.bottleneck_dim, params.out_dim)
        self.teacher = MomentumNetwork(self.encoder, self.head)
        self.criterion = DINOLoss(params.out_dim, params.student_temp, params.teacher_temp_start,
                                  params.teacher_temp_end, params.teacher_temp_warmup_epochs, params.center_momentum,
                                  gather_distributed=True)

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n, crops = views[0].shape[0], len(views)
        features = self.encode_crops(views)
        z = self.head.embed(features)
        student = list(self.head.scores(z).chunk(crops))
        teacher = list(self.teacher(torch.cat(views[:self.num_global_crops])).chunk(self.num_global_crops))
        loss = self.criterion(student, teacher, self.epoch)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}

    def before_optimizer_step(self) -> None:
        if self.epoch < self.params.freeze_last_layer:
            for p in self.head.last_layer.parameters():
                p.grad = None

    def after_optimizer_step(self, progress: float) -> None:
        m = scheduled_momentum(self.params.momentum, progress, self.params.momentum_cosine)
        self.teacher.update([self.encoder, self.head], m)
