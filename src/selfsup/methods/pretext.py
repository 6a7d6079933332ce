"""What the classic pretext methods share: a pretext classifier with its loss and accuracy,
and, for the patch tasks (relative patch position, jigsaw), their training grid and their
evaluation tiling (their whole-image encoder is :class:`selfsup.models.patch_grid.PatchGridEncoder`)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from selfsup.core.patches import PatchGrid, central_tiling
from selfsup.models.encoders import InputSpec
from selfsup.models.heads import MLPHead


def pretext_head(in_dim: int, hidden_dim: int, classes: int) -> MLPHead:
    """The pretext classifier: linear (``hidden_dim`` 0) or one hidden layer with BN and ReLU."""
    if hidden_dim < 0:
        raise ValueError(f"method.head_hidden_dim must be >= 0 (0 = linear), got {hidden_dim}")
    return MLPHead([in_dim, classes] if hidden_dim == 0 else [in_dim, hidden_dim, classes])


def classification(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of a pretext classifier and its accuracy (logged as train/pretext_top1)."""
    return {"loss": F.cross_entropy(logits, targets),
            "pretext_top1": (logits.detach().argmax(1) == targets).float().mean()}


def grid_for(spec: InputSpec, default: Callable[[int], PatchGrid], patch_size: Optional[int],
             gap: Optional[int], jitter: Optional[int]) -> PatchGrid:
    """The grid derived from the image size by ``default``, with any of the three values
    set explicitly (``method.patch_size`` / ``method.gap`` / ``method.jitter``) replacing its own.
    Checked against the image size here, so a bad choice fails before training starts."""
    if spec.kind != "image" or len(spec.input_shape) != 3:
        raise ValueError(f"patch-based pretext tasks need images [C, H, W], got {spec.kind} {spec.input_shape}")
    height, width = spec.input_shape[-2:]
    derived = default(min(height, width))
    grid = PatchGrid(
        derived.patch if patch_size is None else patch_size,
        derived.gap if gap is None else gap,
        derived.jitter if jitter is None else jitter,
    )
    grid.check_fits(height, width)
    return grid


EVAL_TILINGS = ("central", "training")  # method.eval_tiling of the patch tasks


def eval_grid(spec: InputSpec, training: PatchGrid, tiling: str) -> PatchGrid:
    """The patches a whole image is represented by in evaluation (``method.eval_tiling``):
    ``central``, a gapless 3x3 tiling of the central crop (:func:`central_tiling`, Kolesnikov et
    al. 2019); ``training``, the training grid, its gaps kept (the encoder drops its jitter)."""
    if tiling == "central":
        return central_tiling(*spec.input_shape[-2:])
    if tiling == "training":
        return training
    raise ValueError(f"method.eval_tiling={tiling!r}; valid: {', '.join(EVAL_TILINGS)}")
