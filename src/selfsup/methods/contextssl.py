"""ContextSSL (Gupta, Wang, Wang, Jaakkola, Jegelka. "In-Context Symmetries: Self-Supervised
Learning through Contextual World Models", NeurIPS 2024, arXiv 2405.18193), and the invariant
SimCLR baseline on the same pairs.

A step: the dataset's world (:mod:`selfsup.augment.worlds`) turns each sample into a pair of
views with a known action; one environment is drawn for the step (``env_ratio``) and withholds
the other factors' actions; the encoder's features of the pairs become interleaved tokens
[z || a], [z+ || 0], packed into sequences of ``block_size`` tokens (block_size/2 pairs of
different samples, each pair the others' context); the causal transformer (pair mask + random
context mask) predicts, and the loss is NT-Xent between the outputs of 2k and 2k+1 plus
``aux_weight`` x the auxiliary predictor's MSE on the given factors of view 2's parameters.
The projector is the identity, as in the original (so the transformer works in feature space).

An online linear probe on the detached predictions of the source tokens (the original's
second probe; the engine trains the one on the features) rides along: its cross-entropy
reaches the gradient but not the reported loss.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment.worlds import world_for
from selfsup.losses.contextssl import ContextSSLLoss
from selfsup.methods.base import Method, MethodContext, Params
from selfsup.methods.simclr import SimCLR
from selfsup.models import Encoder
from selfsup.models.context_transformer import (
    AuxiliaryPredictor,
    ContextTransformer,
    blind_fraction,
    expected_visible_pairs,
    interleave_pairs,
    pack_sequences,
    unpack_sequences,
)
from selfsup.data.actions import draw_environment

log = logging.getLogger(__name__)


@dataclass
class ContextSSLParams(Params):
    temperature: float = 0.1
    aux_weight: float = 5.0
    clamp_cosine: bool = False  # true: the original code's clamp(cos, min=1e-7) inside NT-Xent
    width: int = 2048  # transformer width, depth, heads, block_size: the original's 3DIEBench GPT
    depth: int = 3
    heads: int = 4
    block_size: int = 128  # tokens per sequence: block_size / 2 pairs
    # random context mask: each token drops each earlier context pair with this probability, per layer;
    # a token then sees (1 - mask_prob) x (block_size/2 - 1) / 2 pairs on average (the paper's 0.9 with
    # block 128: 3.15; 0.9 with block 32: 0.75, too few: a warning below 1)
    mask_prob: float = 0.9
    aux_hidden_dim: int = 1024
    # true: standardise each token's state over its features before the embedding, so the action is not
    # drowned by the encoder's feature scale (see ContextTransformer); false: the original's raw [z || a].
    # Measured on RotColor-MNIST (bench/reports/contextssl): helps the query's action on a frozen encoder,
    # hurts it in the joint 60-epoch recipe, and changes the context's effect in neither
    state_norm: bool = False
    # environment -> weight; None: the dataset's default (rotcolor-mnist: rot .5, color .5 as the
    # paper; adult: sex .5, none .5)
    env_ratio: Optional[Dict[str, float]] = None
    corruption_rate: float = 0.6  # adult: SCARF's fraction of corrupted fields
    flip_prob: float = 0.5  # adult: probability that a pair's second view has the other sex
    eval_contexts: List[int] = field(default_factory=lambda: [0, 2, 6, 14, 30, 126])
    # true: the encoder is fixed (no gradient, BatchNorm statistics frozen) and only the transformer and
    # the auxiliary predictor train: the second stage after an encoder pre-trained elsewhere (model.init;
    # without it the seeded random encoder stays fixed, a random-features baseline)
    freeze_encoder: bool = False


MIN_VISIBLE_PAIRS = 1.0


def warn_if_little_context(mask_prob: float, block_size: int) -> None:
    """One warning line when the training mask leaves a token less than one context pair on
    average (:func:`expected_visible_pairs`): the model then learns to ignore the context."""
    visible = expected_visible_pairs(mask_prob, block_size)
    if visible < MIN_VISIBLE_PAIRS:
        log.warning("method.mask_prob=%g with method.block_size=%d leaves a token %.2f visible context pairs on "
                    "average (%.0f %% see none): the model learns to ignore the context; the paper pairs "
                    "mask_prob 0.9 with block_size 128 (%.2f pairs)", mask_prob, block_size, visible,
                    100 * blind_fraction(mask_prob, block_size), expected_visible_pairs(0.9, 128))


class ContextSSL(Method):
    """Encoder -> context transformer -> contrastive prediction + auxiliary loss."""

    Params = ContextSSLParams
    evaluations = ("contextssl",)

    def __init__(self, params: ContextSSLParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        self.world = world_for(ctx.info, params.corruption_rate, params.flip_prob)
        self.env_ratio = dict(params.env_ratio or self.world.default_env_ratio)
        for env in self.env_ratio:
            self.world.factors.factors(env)  # unknown factor names fail here, not mid-training
        bad = [c for c in params.eval_contexts if c < 0 or c % 2 or c + 1 > params.block_size]
        if bad:
            raise ValueError(f"method.eval_contexts {bad}: each must be an even number of tokens (whole pairs) "
                             f"with room for the query in method.block_size={params.block_size}")
        warn_if_little_context(params.mask_prob, params.block_size)
        dim, actions = encoder.feature_dim, self.world.factors.dim
        self.transformer = ContextTransformer(dim, actions, dim, params.width, params.depth, params.heads,
                                              params.block_size, params.mask_prob, params.state_norm)
        self.aux_predictor = AuxiliaryPredictor(dim, actions, params.aux_hidden_dim)
        self.criterion = ContextSSLLoss(params.temperature, params.aux_weight, params.clamp_cosine,
                                        gather_distributed=True)
        self.prediction_probe = nn.Linear(dim, ctx.num_classes) if ctx.num_classes > 0 else None
        if params.freeze_encoder:
            self.encoder.requires_grad_(False)

    @torch.no_grad()
    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """``[first, second, action, target, keep]``: the pairs' two views, their actions with the
        step's environment applied, the second views' parameters, and ``keep`` [A] (1 on the
        columns of the factors the environment gives). A plain list of tensors, so the engine's
        per-tensor handling (device, memory format) applies to each."""
        pairs = self.world.pairs(x, generator)
        keep = self.world.factors.keep(draw_environment(self.env_ratio, generator), x.device)
        return [pairs.first, pairs.second, pairs.action * keep, pairs.target, keep]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        first, second, action, target, keep = views
        columns = self.world.factors.columns
        given = [name for name, (start, _) in columns.items() if bool(keep[start])]
        n = first.shape[0]
        if self.params.freeze_encoder:
            # in eval mode here, whatever mode the trainer set (BatchNorm's running statistics stay as loaded)
            self.encoder.eval()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.params.freeze_encoder):
            features = self.encoder(torch.cat([first, second]))
        tokens = interleave_pairs(features[:n], features[n:], action)
        # the random context mask draws from torch's global generator (seeded, and saved in checkpoints)
        predictions = unpack_sequences(self.transformer(pack_sequences(tokens, self.params.block_size)), 2 * n)
        estimates = self.aux_predictor(F.normalize(predictions, dim=1))
        targets = target.repeat_interleave(2, dim=0)  # view 2's parameters for both tokens of a pair
        out = self.criterion(predictions, estimates, targets, columns, given)
        out.update(self.probe_predictions(predictions[0::2].detach(), labels))
        out["loss"] = out["loss"] + (out["pred_probe_loss"] - out["pred_probe_loss"].detach())
        return {**out, "features": features[:n], "embeddings": predictions[0::2]}

    def probe_predictions(self, predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy and batch accuracy of the online probe on the predictions of labelled samples."""
        labelled = labels >= 0
        if self.prediction_probe is None or not bool(labelled.any()):
            return {"pred_probe_loss": predictions.new_zeros(())}
        logits = self.prediction_probe(predictions[labelled].float())
        return {"pred_probe_loss": F.cross_entropy(logits, labels[labelled]),
                "pred_probe_top1": (logits.argmax(1) == labels[labelled]).float().mean()}


class PairViews(nn.Module):
    """The two views of a world's pairs, as a list (the form SimCLR takes)."""

    def __init__(self, world):
        super().__init__()
        self.world = world

    @torch.no_grad()
    def forward(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        pairs = self.world.pairs(x, generator)
        return [pairs.first, pairs.second]


class PairSimCLR(SimCLR):
    """SimCLR whose positives are the two views of the dataset's pairs (rotcolor-mnist: two
    renders at random rotations and hues; adult: two corrupted rows, sex flipped half the
    time), so it learns invariance to every factor: ContextSSL's SimCLR baseline (Gupta et al.
    2024, Fig. 3). Same encoder, projection head and NT-Xent as ``simclr``."""

    evaluations = ("equivariance",)
    view_requirement = None  # the dataset's pairs are its views: augment.num_views is not used

    def build_views(self, ctx: MethodContext) -> nn.Module:
        return PairViews(world_for(ctx.info))
