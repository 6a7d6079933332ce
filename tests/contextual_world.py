"""A small synthetic contextual world with RotColor-MNIST's factor layout, for tests of ContextSSL.

An object is a random code u [m]; a view of it has a rotation angle theta and a colour angle
phi, and its state is the fixed linear map z = W [cos theta, sin theta, cos phi, sin phi, u]
(no encoder: the transformer sees the factors directly). A pair is two views of one object; its
action is [cos dtheta, sin dtheta, cos dphi, sin dphi] (factors ``rot`` = columns 0-1, ``color``
= 2-3), the auxiliary targets are view 2's [cos theta, sin theta, cos phi, sin phi]. Each step
draws one environment (rot or color, .5 each) that withholds the other factor's action, and
trains selfsup's own ContextTransformer (pair mask + random context mask), NT-Xent prediction
loss and auxiliary predictor (:class:`ContextSSLLoss`). Evaluated as selfsup.eval.contextual
does: a cached context of c tokens in an environment, every view a zero-action query, and the
pooled R^2 of a random-feature ridge probe from [r(view i) || r(view j)] to the rotation action.

A model that reads the context is equivariant to rotation under a rotation context and
invariant to it under a colour context; one that ignores the context scores the same in both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from selfsup.data.actions import ActionFactors, draw_environment
from selfsup.eval.contextual import build_cache, context_representation
from selfsup.eval.equivariance import RidgeProbe, pooled_r2
from selfsup.losses.contextssl import ContextSSLLoss
from selfsup.models.context_transformer import (
    AuxiliaryPredictor,
    ContextTransformer,
    interleave_pairs,
    pack_sequences,
    unpack_sequences,
)

FACTORS = ActionFactors({"rot": (0, 2), "color": (2, 4)})
ENV_RATIO = {"rot": 0.5, "color": 0.5}


@dataclass
class WorldSettings:
    block_size: int = 32
    mask_prob: float = 0.0
    steps: int = 600
    batch_pairs: int = 128
    state_dim: int = 16
    code_dim: int = 8
    width: int = 64
    depth: int = 2
    heads: int = 4
    lr: float = 2e-3
    seed: int = 0


class SyntheticWorld:
    """The world's fixed state map W and a source of views, pairs and objects."""

    def __init__(self, settings: WorldSettings):
        self.settings = settings
        g = torch.Generator().manual_seed(settings.seed + 100)
        self.map = torch.randn(4 + settings.code_dim, settings.state_dim, generator=g) / (4 + settings.code_dim) ** 0.5

    def objects(self, count: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(count, self.settings.code_dim, generator=g)

    @staticmethod
    def angles(count: int, g: torch.Generator) -> torch.Tensor:
        return torch.rand(count, 2, generator=g) * 2 * math.pi  # theta, phi

    def states(self, codes: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        factors = torch.cat([angles.cos()[:, :1], angles.sin()[:, :1], angles.cos()[:, 1:], angles.sin()[:, 1:]], 1)
        return torch.cat([factors, codes], dim=1) @ self.map

    @staticmethod
    def action(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        d = second - first
        return torch.stack([d[:, 0].cos(), d[:, 0].sin(), d[:, 1].cos(), d[:, 1].sin()], dim=1)

    @staticmethod
    def absolute(angles: torch.Tensor) -> torch.Tensor:
        return torch.stack([angles[:, 0].cos(), angles[:, 0].sin(), angles[:, 1].cos(), angles[:, 1].sin()], dim=1)

    def pairs(self, count: int, g: torch.Generator):
        """States z, z+ [count, d], actions [count, 4] and view 2's absolute targets [count, 4]."""
        codes = self.objects(count, g)
        a1, a2 = self.angles(count, g), self.angles(count, g)
        return self.states(codes, a1), self.states(codes, a2), self.action(a1, a2), self.absolute(a2)


@dataclass
class TrainedWorldModel:
    world: SyntheticWorld
    transformer: ContextTransformer
    seconds: float = 0.0


def train(settings: WorldSettings) -> TrainedWorldModel:
    """``settings.steps`` ContextSSL steps on fresh pairs (seeded, deterministic)."""
    import time

    start = time.time()
    torch.manual_seed(settings.seed)
    world = SyntheticWorld(settings)
    s = settings
    transformer = ContextTransformer(s.state_dim, FACTORS.dim, s.state_dim, s.width, s.depth, s.heads,
                                     s.block_size, s.mask_prob)
    aux = AuxiliaryPredictor(s.state_dim, FACTORS.dim, s.width)
    criterion = ContextSSLLoss(temperature=0.1, aux_weight=5.0)
    params = list(transformer.parameters()) + list(aux.parameters())
    optimiser = torch.optim.Adam(params, lr=s.lr)
    g = torch.Generator().manual_seed(s.seed + 1)
    transformer.train()
    for step in range(s.steps):
        z, z_next, action, target = world.pairs(s.batch_pairs, g)
        env = draw_environment(ENV_RATIO, g)
        tokens = interleave_pairs(z, z_next, FACTORS.mask(action, env))
        predictions = unpack_sequences(transformer(pack_sequences(tokens, s.block_size)), 2 * s.batch_pairs)
        estimates = aux(F.normalize(predictions, dim=1))
        out = criterion(predictions, estimates, target.repeat_interleave(2, dim=0), FACTORS.columns,
                        FACTORS.factors(env))
        optimiser.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimiser.step()
    transformer.eval()
    return TrainedWorldModel(world, transformer, time.time() - start)


def rotation_r2(model: TrainedWorldModel, env: str, context_tokens: int, objects: int = 200, views: int = 4,
                seed: int = 7, ablate_context: bool = False, mask_prob: float = 0.0) -> float:
    """Pooled R^2 of the rotation action from [r(view i) || r(view j)] of held-out objects,
    every view read after a cached context of ``context_tokens`` tokens in ``env`` (its actions
    zeroed with ``ablate_context``; ``mask_prob`` > 0: read with the training's visibility); probe
    fitted on one set of objects, scored on another."""
    world = model.world
    g = torch.Generator().manual_seed(seed)
    z, z_next, action, _ = world.pairs(context_tokens // 2, g)
    if ablate_context:
        action = torch.zeros_like(action)
    cache = build_cache(model.transformer, FACTORS, z, z_next, action, env, context_tokens, mask_prob, seed)
    represent = context_representation(model.transformer, FACTORS, cache, env, mask_prob, seed)

    def probe_data(count: int):
        codes = world.objects(count, g).repeat_interleave(views, dim=0)
        angles = world.angles(count * views, g)
        r = represent(world.states(codes, angles), torch.zeros(count * views, FACTORS.dim)).view(count, views, -1)
        angles = angles.view(count, views, 2)
        i, j = torch.triu_indices(views, views, 1)
        x = torch.cat([r[:, i], r[:, j]], dim=2).flatten(0, 1)
        y = world.action(angles[:, i].flatten(0, 1), angles[:, j].flatten(0, 1))[:, :2]
        return x, y

    (x_bank, y_bank), (x_test, y_test) = probe_data(objects), probe_data(objects)
    probe = RidgeProbe(x_bank, y_bank, random_features=512, seed=seed)
    return pooled_r2(y_test, probe(x_test))
