"""Fine-tuning: the whole trained encoder with a linear head, trained on the labelled training
samples (the fine-tuning evaluation of Kolesnikov et al. 2019 and Zhai et al. 2019).
eval.json: ``finetune.top1`` (the trained encoder only: fine-tuning is the costly probe)."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.data.base import IndexedDataset
from selfsup.data.loader import make_loader
from selfsup.eval.context import EvalContext
from selfsup.eval.registry import Evaluation
from selfsup.eval.features import as_float_inputs, extract_features


def finetune_accuracy(
    encoder: nn.Module,
    train: IndexedDataset,
    test: IndexedDataset,
    num_classes: int,
    epochs: int = 5,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 test accuracy after fine-tuning a copy of ``encoder`` (``feature_dim`` features)
    with a new linear head: SGD with momentum 0.9, cosine schedule, ``epochs`` passes over the
    labelled (label >= 0) training samples in seeded order, BatchNorm in training mode; the
    test set is then classified in eval mode. The encoder passed in is left untouched."""
    labelled = torch.nonzero(train.labels >= 0).flatten()
    if len(labelled) == 0:
        raise ValueError("fine-tuning needs labelled training samples; none have a label")
    data = train.take(labelled)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(copy.deepcopy(encoder), nn.Linear(encoder.feature_dim, num_classes)).to(device)
    batch = min(batch_size, len(data))
    loader = make_loader(data, batch, shuffle=True, seed=seed, drop_last=True)
    total = max(1, epochs * len(loader))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    model.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(model(as_float_inputs(x).to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    logits, labels = extract_features(model, test, device=device)
    return float((logits.argmax(1) == labels).float().mean())


def finetune(ctx: EvalContext) -> dict:
    """``finetune.top1`` of the trained encoder (``--probe finetune``) on the kNN bank's samples."""
    accuracy = finetune_accuracy(ctx.encoders["trained"], ctx.bank, ctx.test, ctx.splits.num_classes,
                                 seed=int(ctx.cfg.seed), device=ctx.device)
    return {"finetune.top1": accuracy}


FINETUNE = Evaluation(finetune)
