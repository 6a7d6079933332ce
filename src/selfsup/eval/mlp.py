"""MLP probe: a small MLP trained on frozen features (the evaluation head of Kolesnikov, Zhai,
Beyer, "Revisiting Self-Supervised Visual Representation Learning", CVPR 2019, beside the
linear one). eval.json: ``mlp.top1`` (baselines prefixed)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from selfsup.eval.context import EvalContext, key_prefix
from selfsup.eval.registry import Evaluation
from selfsup.models.heads import MLPHead


def mlp_probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    hidden_dim: int = 512,
    epochs: int = 30,
    lr: float = 1e-2,  # better than 1e-3 and 3e-3 on digits and 3,000 MNIST raw pixels
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Top-1 test accuracy of Linear-BN-ReLU-Linear (:class:`MLPHead`) trained with AdamW and a
    cosine schedule for a fixed number of ``epochs`` on the standardised features of the
    labelled (label >= 0) training samples; initialisation and shuffling seeded. The epoch
    count is fixed, not tuned on the test set."""
    labelled = train_y >= 0
    x, y = train_x[labelled].float(), train_y[labelled]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = MLPHead([x.shape[1], hidden_dim, num_classes])
    g = torch.Generator().manual_seed(seed)
    batch = min(batch_size, len(x))
    steps_per_epoch = max(1, len(x) // batch)  # full batches only: BatchNorm needs more than one sample
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for k in range(steps_per_epoch):
            index = order[k * batch : (k + 1) * batch]
            loss = F.cross_entropy(head(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    head.eval()
    with torch.no_grad():
        prediction = torch.cat([head((chunk.float() - mean) / std).argmax(1) for chunk in test_x.split(4096)])
    return float((prediction == test_y).float().mean())


def mlp(ctx: EvalContext) -> dict:
    """``mlp.top1`` for the trained encoder and each baseline (``--probe mlp``)."""
    out = {}
    for subject in ctx.subjects():
        f = ctx.features(subject)
        out[f"{key_prefix(subject)}mlp.top1"] = mlp_probe_accuracy(
            f.train_x, f.train_y, f.test_x, f.test_y, ctx.splits.num_classes, seed=int(ctx.cfg.seed))
    return out


MLP = Evaluation(mlp)
