"""DINO: self-distillation of a centred, sharpened teacher into the student, across crops.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin, "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021 (arXiv 2104.14294): the multi-crop loss of
eq. 3, the centring of eq. 4 and the paper's implementation details: student temperature
tau_s = 0.1, teacher tau_t warmed up linearly from 0.04 to 0.07 over the first 30 epochs,
centre momentum m = 0.9.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.distributed import all_reduce_mean
from selfsup.losses.infonce import check_temperature
from selfsup.losses.multicrop import check_crops, cross_crop_entropy


def check_center_momentum(momentum: float) -> None:
    if not 0 <= momentum <= 1:
        raise ValueError(f"center momentum must be in [0, 1], got {momentum}")


def check_center(center: torch.Tensor, k: int) -> None:
    if center.shape != (k,):
        raise ValueError(f"center must be a [{k}] tensor (one entry per output dimension), got {tuple(center.shape)}")


def dino_loss(
    student_logits: Sequence[torch.Tensor],
    teacher_logits: Sequence[torch.Tensor],
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO's cross-entropy between teacher and student over pairs of different crops (eq. 3):

        P_t = softmax((g_t - c) / tau_t)      (teacher, no gradient)
        P_s = softmax(g_s / tau_s)            (student)
        L   = mean over pairs (t, s), s != t, of  mean_n  -sum_k P_t[n, k] log P_s[n, k]

    where t runs over the teacher's crops (the global crops) and s over all student crops.
    student_logits: one [N, K] tensor per crop, the global crops *first and in the same order*
    as teacher_logits (student crop i, i < len(teacher_logits), is teacher crop i, so that pair
    is skipped); teacher_logits: one [N, K] tensor per global crop; center: [K] (see
    :func:`update_center`). The sum of eq. 3 is divided by its number of terms (as the
    official code does), so the value does not grow with the number of crops. teacher_temp
    0.04 is the start of the paper's warm-up (see :func:`teacher_temperature`).

    Distributed semantics: no communication. The loss is a mean over this process's samples,
    so with equal per-process batches DDP's average equals the whole-batch loss; the centre must
    be the same on every process (:func:`update_center` with ``gather_distributed`` keeps it so).

    >>> student = [torch.randn(8, 64) for _ in range(4)]   # 2 global + 2 local crops
    >>> teacher = [torch.randn(8, 64) for _ in range(2)]
    >>> dino_loss(student, teacher, torch.zeros(64)).shape
    torch.Size([])
    """
    check_crops(teacher_logits, "teacher_logits")
    check_crops(student_logits, "student_logits", like=teacher_logits[0])
    check_center(center, teacher_logits[0].shape[1])
    check_temperature(student_temp)
    check_temperature(teacher_temp)
    if len(student_logits) < len(teacher_logits):
        raise ValueError(f"student_logits must hold every teacher (global) crop first, then the local crops: got "
                         f"{len(student_logits)} student crops for {len(teacher_logits)} teacher crops")
    c = center.detach().to(teacher_logits[0].dtype)
    targets = [F.softmax((g.detach() - c) / teacher_temp, dim=1) for g in teacher_logits]
    log_probs = [F.log_softmax(g / student_temp, dim=1) for g in student_logits]
    return cross_crop_entropy(targets, log_probs)


@torch.no_grad()
def update_center(
    center: torch.Tensor,
    teacher_logits: Sequence[torch.Tensor],
    momentum: float = 0.9,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """The new centre c' = m c + (1 - m) mean(g_t) (eq. 4), the mean over every row of every
    teacher crop [N, K] (the batch and its global crops). Returns a new [K] tensor in the
    centre's dtype; ``center`` is not modified.

    gather_distributed: the mean is over the whole batch of every process (the row sums and
    the row count are all-reduced, so unequal per-process batches are fine) and every process
    gets the same centre, as in the paper; without it, each process uses its own rows."""
    check_crops(teacher_logits, "teacher_logits")
    check_center(center, teacher_logits[0].shape[1])
    check_center_momentum(momentum)
    rows = torch.cat([g.detach() for g in teacher_logits])
    rows = rows.to(torch.promote_types(rows.dtype, torch.float32))  # sums of bf16 rows lose digits
    stats = torch.cat([rows.sum(0), rows.new_full((1,), rows.shape[0])])
    if gather_distributed:
        stats = all_reduce_mean(stats)
    batch_center = (stats[:-1] / stats[-1]).to(center.dtype)
    return momentum * center.detach() + (1 - momentum) * batch_center


def teacher_temperature(epoch_progress: float, warmup_epochs: float, start: float = 0.04, end: float = 0.07) -> float:
    """DINO's teacher-temperature schedule: linear from ``start`` at epoch 0 to ``end`` at
    ``warmup_epochs``, then constant (the paper: 0.04 -> 0.07 over 30 epochs).
    ``epoch_progress`` is the fractional epoch (epoch + step / steps per epoch), so the
    temperature moves every step; ``warmup_epochs=0`` gives ``end`` throughout."""
    check_temperature(start)
    check_temperature(end)
    if warmup_epochs < 0 or epoch_progress < 0:
        raise ValueError(f"epoch_progress and warmup_epochs must be non-negative, got {epoch_progress} and "
                         f"{warmup_epochs}")
    if epoch_progress >= warmup_epochs:
        return end
    return start + (end - start) * epoch_progress / warmup_epochs


class DINOLoss(nn.Module):
    """Module form of :func:`dino_loss` that owns the centre (a [out_dim] buffer, zeros at the
    start, saved in checkpoints) and the teacher-temperature warm-up.

    ``DINOLoss(out_dim)(student_logits, teacher_logits, epoch_progress)`` returns the loss with
    the current centre and teacher temperature ``teacher_temperature(epoch_progress, ...)``,
    then, in training mode only, updates the centre with this batch's teacher outputs (the
    paper's order: the loss uses the centre of the previous steps). In eval mode the centre is
    left alone, so validation does not change training state."""

    def __init__(
        self,
        out_dim: int,
        student_temp: float = 0.1,
        teacher_temp_start: float = 0.04,
        teacher_temp_end: float = 0.07,
        warmup_epochs: float = 30,
        center_momentum: float = 0.9,
        gather_distributed: bool = False,
    ):
        super().__init__()
        if out_dim <= 0:
            raise ValueError(f"out_dim must be positive, got {out_dim}")
        for value in (student_temp, teacher_temp_start, teacher_temp_end):
            check_temperature(value)
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be non-negative, got {warmup_epochs}")
        check_center_momentum(center_momentum)
        self.student_temp, self.warmup_epochs = student_temp, warmup_epochs
        self.teacher_temp_start, self.teacher_temp_end = teacher_temp_start, teacher_temp_end
        self.center_momentum, self.gather_distributed = center_momentum, gather_distributed
        self.register_buffer("center", torch.zeros(out_dim))

    def forward(self, student_logits: Sequence[torch.Tensor], teacher_logits: Sequence[torch.Tensor],
                epoch_progress: float) -> torch.Tensor:
        teacher_temp = teacher_temperature(epoch_progress, self.warmup_epochs, self.teacher_temp_start,
                                           self.teacher_temp_end)
        loss = dino_loss(student_logits, teacher_logits, self.center, self.student_temp, teacher_temp)
        if self.training:
            self.center.copy_(update_center(self.center, teacher_logits, self.center_momentum, self.gather_distributed))
        return loss
