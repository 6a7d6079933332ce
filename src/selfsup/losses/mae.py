"""MAE: patches, per-image random masking, and the reconstruction loss on the masked patches.

He, Chen, Xie, Li, Dollár, Girshick, "Masked Autoencoders Are Scalable Vision Learners", CVPR
2022 (arXiv 2111.06377), sec. 3: random sampling of patches without replacement (mask ratio
0.75), the decoder's target of normalised pixels per patch ("norm_pix"), and the mean squared
error computed on the masked patches only.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def check_patch(patch: int) -> None:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive integer (pixels per side), got {patch!r}")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Images [N, C, H, W] -> patches [N, L, patch * patch * C], L = (H / patch) (W / patch).

    Patches run row by row over the image (patch l covers rows (l // (W/patch)) * patch ... and
    columns (l % (W/patch)) * patch ...); inside a patch the values run over pixel rows, pixel
    columns, then channels (channels last, as a decoder that predicts pixels per patch expects):
    patches[n, i * w + j, (a * patch + b) * C + c] = images[n, c, i * patch + a, j * patch + b]."""
    check_patch(patch)
    if images.dim() != 4 or images.shape[2] % patch or images.shape[3] % patch:
        raise ValueError(f"patchify needs images [N, C, H, W] with H and W multiples of patch={patch}, got "
                         f"{tuple(images.shape)}")
    n, c, height, width = images.shape
    h, w = height // patch, width // patch
    grid = images.reshape(n, c, h, patch, w, patch).permute(0, 2, 4, 3, 5, 1)
    return grid.reshape(n, h * w, patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """The inverse of :func:`patchify`: patches [N, L, patch * patch * C] -> images [N, C, H, W].
    size: (H, W); None for a square image (L must then be a square number)."""
    check_patch(patch)
    if patches.dim() != 3 or patches.shape[2] % (patch * patch):
        raise ValueError(f"unpatchify needs patches [N, L, patch * patch * C] with patch={patch}, got "
                         f"{tuple(patches.shape)}")
    n, length, values = patches.shape
    if size is None:
        side = math.isqrt(length)
        if side * side != length:
            raise ValueError(f"{length} patches do not make a square image: pass size=(H, W)")
        h = w = side
    else:
        height, width = size
        h, w = height // patch, width // patch
        if height % patch or width % patch or h * w != length:
            raise ValueError(f"size {tuple(size)} with patch={patch} does not give {length} patches")
    c = values // (patch * patch)
    grid = patches.reshape(n, h, w, patch, patch, c).permute(0, 5, 1, 3, 2, 4)
    return grid.reshape(n, c, h * patch, w * patch)


def random_masking(
    n: int,
    num_patches: int,
    mask_ratio: float = 0.75,
    generator: Optional[torch.Generator] = None,
    device: Optional[torch.device] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-image random masking: for each of n images an independent uniformly random
    permutation of its ``num_patches`` patches (argsort of uniform noise drawn from
    ``generator``, on the generator's device); the first L_keep = floor(L (1 - mask_ratio))
    patches of it stay visible, the rest are masked.

    Returns (keep [n, L_keep] long: the visible patches' indices in permutation order, mask
    [n, L] float: 1 for a masked (removed) patch, 0 for a visible one, restore [n, L] long: the
    inverse permutation). Tokens laid out as [visible tokens, mask tokens] go back to image order
    with ``torch.gather(tokens, 1, restore[..., None].expand_as(tokens))``. Results go to
    ``device`` (default: the generator's). At least one patch must stay visible and one be masked."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if n < 1 or num_patches < 2:
        raise ValueError(f"random_masking needs n >= 1 images of num_patches >= 2 patches, got n={n}, "
                         f"num_patches={num_patches}")
    keep_count = math.floor(num_patches * (1 - mask_ratio) + 1e-9)  # 1e-9: 10 * (1 - 0.9) is 0.999...
    if not 1 <= keep_count < num_patches:
        raise ValueError(f"mask_ratio={mask_ratio} keeps {keep_count} of {num_patches} patches; at least one must "
                         "stay visible and one be masked")
    noise_device = generator.device if generator is not None else device
    order = torch.rand(n, num_patches, generator=generator, device=noise_device).argsort(1)
    if device is not None:
        order = order.to(device)
    restore = order.argsort(1)
    mask = (restore >= keep_count).to(torch.float32)
    return order[:, :keep_count], mask, restore


def mae_loss(
    pred: torch.Tensor,
    target_patches: torch.Tensor,
    mask: torch.Tensor,
    norm_pix: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """MAE's reconstruction loss: the mean over masked patches of the per-patch mean squared error,

        L = sum_{n, l} mask[n, l] * mean_p (pred[n, l, p] - t[n, l, p])^2  /  sum_{n, l} mask[n, l]

    with t the target patches (:func:`patchify` of the input images), or with ``norm_pix``
    each target patch normalised by its own pixels: t = (x - mean(x)) / sqrt(var(x) + eps), var
    the unbiased variance over the patch's values (as the official MAE code does), eps 1e-6.
    pred, target_patches: [N, L, P]; mask: [N, L], 1 = masked (bool or 0/1 numbers, as
    :func:`random_masking` gives); visible patches do not count. The target is a constant.

    Distributed semantics: no communication; a mean over this process's masked patches, so
    with the same number of masked patches per process (a fixed mask ratio and equal batches)
    DDP's average equals the whole-batch loss.

    >>> images = torch.rand(4, 3, 32, 32)
    >>> keep, mask, restore = random_masking(4, 64, 0.75, torch.Generator().manual_seed(0))
    >>> mae_loss(torch.randn(4, 64, 48), patchify(images, 4), mask).shape
    torch.Size([])
    """
    if pred.dim() != 3 or pred.shape != target_patches.shape:
        raise ValueError(f"pred and target_patches must be [N, L, P] tensors of the same shape, got "
                         f"{tuple(pred.shape)} and {tuple(target_patches.shape)}")
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must be [N, L] = {tuple(pred.shape[:2])} (1 = masked patch), got {tuple(mask.shape)}")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    target = target_patches.detach().to(pred.dtype)
    if norm_pix:
        if target.shape[2] < 2:
            raise ValueError("norm_pix normalises each patch over its values and needs at least 2 per patch")
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + eps).sqrt()
    per_patch = (pred - target).pow(2).mean(-1)
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum()


class MAELoss(nn.Module):
    """Module form of :func:`mae_loss`: ``MAELoss(norm_pix=True)(pred, target_patches, mask)``."""

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.norm_pix, self.eps = norm_pix, eps

    def forward(self, pred: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mae_loss(pred, target_patches, mask, self.norm_pix, self.eps)
