"""Fine-tuning: the whole trained encoder with a linear head, trained on the labelled training
samples (the fine-tuning evaluation of Kolesnikov et al. 2019 and Zhai et al. 2019).
eval.json: ``finetune.top1`` (the trained encoder only: fine-tuning is the costly probe).

On data with a continuous target (rotating-digits' ``freq``, ppg-heartpy's ``heart_rate``) the
encoder is fine-tuned for the target instead, SimPer's fine-tuning evaluation (Yang et al., ICLR
2023): for a per-frame encoder the head is the released code's ``Dense(1)`` on the per-frame
series of the whole sequence (otherwise a linear head on the encoder's feature), MSE on the
standardised target, on a small budget (:data:`REGRESSION_BUDGET`: Adam, lr 1e-3, cosine, 5
epochs over the bank in batches of 16, no augmentation). eval.json:
``[random_init.]finetune.regression.{mae,mape,r2}`` for the trained encoder and, with the
baselines on, the random-init one (the same budget from scratch)."""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.data.base import IndexedDataset
from selfsup.data.loader import make_loader
from selfsup.eval.context import EvalContext, key_prefix
from selfsup.eval.registry import Evaluation
from selfsup.eval.features import as_float_inputs, extract_features
from selfsup.eval.label_gate import class_label_gap
from selfsup.eval.regression import has_readouts, regression_metrics, target_name

REGRESSION_BUDGET = {"epochs": 5, "lr": 1e-3, "batch_size": 16}


def trainable_copy(encoder: nn.Module) -> nn.Module:
    """A copy of the encoder with every parameter trainable (a method may have frozen a part
    its loss does not reach, e.g. SimCLR on clips freezes the per-frame head): fine-tuning
    trains the whole network."""
    return copy.deepcopy(encoder).requires_grad_(True)


def train_on_cosine(model: nn.Module, loader, optimizer: torch.optim.Optimizer, epochs: int,
                    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device) -> None:
    """The loop both fine-tunings share: ``epochs`` passes over ``loader`` in its seeded order,
    BatchNorm in training mode, ``optimizer`` on a cosine schedule over all the steps, the loss
    ``loss_of(model output, batch labels)``."""
    total = max(1, epochs * len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    model.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            loss = loss_of(model(as_float_inputs(x).to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


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
        model = nn.Sequential(trainable_copy(encoder), nn.Linear(encoder.feature_dim, num_classes)).to(device)
    batch = min(batch_size, len(data))
    loader = make_loader(data, batch, shuffle=True, seed=seed, drop_last=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    train_on_cosine(model, loader, optimizer, epochs, F.cross_entropy, device)
    logits, labels = extract_features(model, test, device=device)
    return float((logits.argmax(1) == labels).float().mean())


class TargetHead(nn.Module):
    """An encoder and a linear head to one value: on the per-frame series [N, T] for a per-frame
    encoder (the released SimPer code's ``Dense(1)``), else on the encoder's feature."""

    def __init__(self, encoder: nn.Module, length: int):
        super().__init__()
        self.encoder = encoder
        self.per_frame = has_readouts(encoder)
        self.head = nn.Linear(length if self.per_frame else encoder.feature_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.forward_stages(x)["series"] if self.per_frame else self.encoder(x))


def finetune_regression(
    encoder: nn.Module,
    train: IndexedDataset,
    train_t: torch.Tensor,
    test: IndexedDataset,
    test_t: torch.Tensor,
    epochs: int = REGRESSION_BUDGET["epochs"],
    lr: float = REGRESSION_BUDGET["lr"],
    batch_size: int = REGRESSION_BUDGET["batch_size"],
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """{"mae", "mape", "r2"} on the test set after fine-tuning a copy of ``encoder`` with a
    :class:`TargetHead` on every training sample: MSE on the target standardised by its training
    mean and std, Adam, cosine schedule, ``epochs`` passes in seeded order, BatchNorm in training
    mode; the test set is then predicted in eval mode. The encoder passed in is left untouched."""
    if len(train) != len(train_t) or len(test) != len(test_t):
        raise ValueError(f"samples and targets differ in length: train {len(train)} vs {len(train_t)}, "
                         f"test {len(test)} vs {len(test_t)}")
    length = int(train.load(torch.tensor([0])).shape[1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TargetHead(trainable_copy(encoder), length).to(device)
    mean, std = train_t.double().mean(), train_t.double().std().clamp_min(1e-12)
    standard = ((train_t.double() - mean) / std).float().to(device)
    # the labels are the samples' positions: each batch's targets are looked up by them
    loader = make_loader(train.with_labels(torch.arange(len(train))), min(batch_size, len(train)), shuffle=True,
                         seed=seed, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_on_cosine(model, loader, optimizer, epochs,
                    lambda output, index: F.mse_loss(output.squeeze(1), standard[index]), device)
    prediction, _ = extract_features(model, test, device=device)
    return regression_metrics(prediction.squeeze(1).double().numpy() * float(std) + float(mean), test_t.double().numpy())


def finetune(ctx: EvalContext) -> dict:
    """``--probe finetune`` on the kNN bank's samples: ``[random_init.]finetune.regression.*`` on
    data with a continuous target, else ``finetune.top1`` of the trained encoder (skipped, with
    the reason, without class labels)."""
    name, seed = target_name(ctx), int(ctx.cfg.seed)
    if name is not None:
        out = {}
        for subject in ("trained", "random_init"):
            if subject in ctx.encoders:
                metrics = finetune_regression(ctx.encoders[subject], ctx.bank, ctx.bank.targets[name], ctx.test,
                                              ctx.test.targets[name], seed=seed, device=ctx.device)
                out.update({f"{key_prefix(subject)}finetune.regression.{k}": v for k, v in metrics.items()})
        return out
    gap = class_label_gap(ctx.bank.labels, ctx.test.labels)
    if gap is not None:
        return {"skipped.finetune": gap}
    accuracy = finetune_accuracy(ctx.encoders["trained"], ctx.bank, ctx.test, ctx.splits.num_classes,
                                 seed=seed, device=ctx.device)
    return {"finetune.top1": accuracy}


FINETUNE = Evaluation(finetune)
