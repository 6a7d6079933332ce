"""SimCLR (Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020).

On clips and signals (encoders that emit one value per frame, selfsup.models.temporal),
``method.embedding`` picks what NT-Xent contrasts through the projection head:

- ``clip`` (the default there): the encoder's pooled clip embedding, SimCLR as SimPer's paper
  trains it as a baseline (Yang et al., ICLR 2023): no periodic similarity anywhere;
- ``spectrum``: the unit-norm power spectrum of the per-frame series (the encoder's frozen
  feature), "SimCLR + periodic readout": it gives the baseline SimPer's periodic inductive bias.

On images there is one embedding, the encoder's features (``auto``, the default everywhere,
is ``clip`` on sequences and that on images)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.losses import nt_xent
from selfsup.methods.base import MethodContext, Params
from selfsup.methods.two_view import TwoViewMethod
from selfsup.models import Encoder, SimCLRProjectionHead
from selfsup.models.temporal import encoder_readouts, series_backbone

EMBEDDINGS = ("auto", "clip", "spectrum")


@dataclass
class SimCLRParams(Params):
    temperature: float = 0.5  # the paper's CIFAR-10 value (0.1 on ImageNet with large batches)
    proj_hidden_dim: int = 2048
    proj_dim: int = 128
    embedding: str = "auto"  # sequences: clip (auto) | spectrum; images: the encoder's features (auto)


class SimCLR(TwoViewMethod):
    """Two SimCLR views per image, encoder + projection head, NT-Xent over the batch with the
    negatives gathered from every process."""

    global_batchnorm = True  # global BN in the projector (Chen et al. 2020, sec. 2.2: BN over all devices)

    Params = SimCLRParams

    def __init__(self, params: SimCLRParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        backbone = series_backbone(encoder)
        sequence = backbone is not None
        if params.embedding not in EMBEDDINGS:
            raise ValueError(f"method.embedding={params.embedding!r}; valid: {', '.join(EMBEDDINGS)}")
        if params.embedding != "auto" and not sequence:
            raise ValueError(f"method.embedding={params.embedding} is for encoders of clips or signals "
                             f"(simper-featurizer, signal-conv1d); model.encoder here has one embedding: drop the key")
        self.embedding = "clip" if sequence and params.embedding == "auto" else params.embedding
        in_dim = backbone.clip_dim if self.embedding == "clip" else encoder.feature_dim
        if self.embedding == "clip":
            # the loss never reaches the one-channel head after the clip stage: it stays as
            # initialised, frozen (DDP then finds no trainable parameter without a gradient)
            backbone.stages[list(backbone.stages)[-1]].requires_grad_(False)
        self.projector = SimCLRProjectionHead(in_dim, params.proj_hidden_dim, params.proj_dim)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.embedding != "clip":
            return super().embed(x)
        readouts = encoder_readouts(self.encoder, x)
        # the spectrum only feeds the online probe (detached there); the loss sees the clip embedding
        return readouts["spectrum"], readouts["clip"]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        n = views[0].shape[0]
        features, z = self.encode_pair(views)
        loss = nt_xent(z[:n], z[n:], self.params.temperature, gather_distributed=True)
        return {"loss": loss, "features": features[:n], "embeddings": z[:n]}
