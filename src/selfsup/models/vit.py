"""Vision Transformers (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021) built on
torchvision's pre-norm encoder blocks, with no extra dependency: ``vit-tiny`` (width 192, 12
blocks, 3 heads) and ``vit-small`` (384, 12, 6; the DeiT sizes, Touvron et al. 2021), MLP ratio
4, a class token, learnable position embeddings and optional register tokens (Darcet et al.,
"Vision Transformers Need Registers", ICLR 2024).

The token sequence is ``[class, register_1..register_R, patch_1..patch_L]``; the class token and
the patches get position embeddings, the registers none (as in Darcet et al.). The patch size
comes from the image side (:func:`auto_patch_size`) unless ``model.patch_size`` is set.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock

from selfsup.config.schema import ModelConfig
from selfsup.models.encoders import InputSpec

VIT_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6)}  # width, depth, heads
MLP_RATIO = 4


def auto_patch_size(image_side: int) -> int:
    """The patch side for square-ish images of ``image_side`` px (the smaller side): 2 up to
    16 px (8 px digits: a 4x4 grid), 4 up to 32 px (28 px: 7x7), 8 up to 112 px (64 px: 8x8,
    96 px: 12x12), 16 beyond (224 px: 14x14): a grid of about 7-14 patches a side, ViT-S/16's
    14x14 at ImageNet size and few enough tokens for a CPU at 28-32 px."""
    if image_side < 1:
        raise ValueError(f"image side must be positive, got {image_side}")
    for limit, patch in ((16, 2), (32, 4), (112, 8)):
        if image_side <= limit:
            return patch
    return 16


def select_tokens(tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """tokens [N, L, D], keep [N, L_keep] (indices into L) -> [N, L_keep, D]."""
    if keep.dim() != 2 or keep.shape[0] != tokens.shape[0] or keep.dtype != torch.long:
        raise ValueError(f"keep must be a LongTensor [N={tokens.shape[0]}, L_keep] of patch indices, "
                         f"got {keep.dtype} {tuple(keep.shape)}")
    return tokens.gather(1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class ViTEncoder(nn.Module):
    """A ViT on [N, C, H, W] images. ``forward(x)`` -> the class token after the final
    LayerNorm, [N, width] (``feature_dim = width``).

    ``forward_tokens(x, keep=None)`` -> every token after the final LayerNorm,
    [N, 1 + R + L_keep, D]: class token, R registers, then the patches kept (``keep``
    [N, L_keep]: indices of the visible patches in row-major grid order, selected after the
    position embeddings are added and before the blocks: MAE / iBOT masking; None = all L).

    ``forward_stages(x)`` -> ``{"block1": ..., "block<depth>": ..., "cls": ...}``: the patch
    tokens after each block as a feature map [N, D, grid_h, grid_w] (class and register tokens
    left out), so the per-layer probe's global pooling gives the mean patch token of each block;
    ``cls`` is ``forward(x)``.

    Inputs of another size than the one built for get their position embeddings resized
    (bicubic) to their grid; the grid is floor(H / p) x floor(W / p) (a remainder of fewer than
    p pixels at the right / bottom is not seen). Attributes: ``patch_embed`` (the Conv2d patch
    projection), ``patch_size``, ``grid_size`` and ``num_patches`` (of the built image size),
    ``num_registers``, ``num_prefix_tokens`` (1 + R), ``feature_dim``."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], patch_size: int, width: int, depth: int,
                 heads: int, mlp_ratio: float = MLP_RATIO, registers: int = 0):
        super().__init__()
        if not 1 <= patch_size <= min(image_size):
            raise ValueError(f"patch size {patch_size} does not fit {image_size[0]}x{image_size[1]} images "
                             "(model.patch_size)")
        if width % heads:
            raise ValueError(f"ViT width {width} must be divisible by its {heads} heads")
        if registers < 0:
            raise ValueError(f"model.vit_registers must be >= 0, got {registers}")
        self.patch_size = patch_size
        self.grid_size = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_registers = registers
        self.num_prefix_tokens = 1 + registers
        self.feature_dim = width
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, width)) if registers else None
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.num_patches, width))  # class token, then patches
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            EncoderBlock(heads, width, int(mlp_ratio * width), dropout=0.0, attention_dropout=0.0, norm_layer=norm)
            for _ in range(depth))
        self.norm = norm(width)
        fan_in = in_channels * patch_size * patch_size  # torchvision's ViT init for the projection
        nn.init.trunc_normal_(self.patch_embed.weight, std=(1 / fan_in) ** 0.5)
        nn.init.zeros_(self.patch_embed.bias)
        for p in (self.cls_token, self.pos_embed, self.register_tokens):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def freeze_patch_embed(self) -> "ViTEncoder":
        """Keep the patch projection at its random init (MoCo v3's stability trick, Chen, Xie
        and He 2021, sec. 5): its parameters get no gradient."""
        self.patch_embed.requires_grad_(False)
        return self

    def patch_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """The patches' position embeddings [1, grid_h * grid_w, D], resized when ``grid``
        differs from the built one."""
        pos = self.pos_embed[:, 1:]
        if tuple(grid) == self.grid_size:
            return pos
        gh, gw = self.grid_size
        pos = pos.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=tuple(grid), mode="bicubic", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def embed_patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch tokens with their position embeddings [N, L, D], and the grid (h, w)."""
        if x.dim() != 4 or min(x.shape[-2:]) < self.patch_size:
            raise ValueError(f"a ViT with {self.patch_size}-px patches takes [N, C, H, W] images of at least "
                             f"{self.patch_size} px a side, got {tuple(x.shape)}")
        maps = self.patch_embed(x)
        grid = (maps.shape[-2], maps.shape[-1])
        return maps.flatten(2).transpose(1, 2) + self.patch_pos_embed(grid), grid

    def with_prefix(self, patches: torch.Tensor) -> torch.Tensor:
        """[class token (with its position embedding), registers, patches]: [N, 1 + R + L, D]."""
        n = patches.shape[0]
        prefix = [(self.cls_token + self.pos_embed[:, :1]).expand(n, -1, -1)]
        if self.register_tokens is not None:
            prefix.append(self.register_tokens.expand(n, -1, -1))
        return torch.cat([*prefix, patches], dim=1)

    def forward_tokens(self, x: torch.Tensor, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
        patches, _ = self.embed_patches(x)
        if keep is not None:
            patches = select_tokens(patches, keep)
        tokens = self.with_prefix(patches)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(x)[:, 0]

    def forward_stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        patches, grid = self.embed_patches(x)
        tokens = self.with_prefix(patches)
        out = {}
        for i, block in enumerate(self.blocks, 1):
            tokens = block(tokens)
            out[f"block{i}"] = tokens[:, self.num_prefix_tokens:].transpose(1, 2).reshape(x.shape[0], -1, *grid)
        out["cls"] = self.norm(tokens)[:, 0]
        return out


def vit(size: str) -> Callable[[ModelConfig, InputSpec], ViTEncoder]:
    width, depth, heads = VIT_SIZES[size]

    def build(cfg: ModelConfig, spec: InputSpec) -> ViTEncoder:
        if spec.kind != "image" or len(spec.input_shape) != 3:
            raise ValueError(f"model.encoder=vit-{size} takes images [C, H, W], not {spec.kind} inputs "
                             f"of shape {spec.input_shape}")
        h, w = spec.input_shape[-2:]
        patch = auto_patch_size(min(h, w)) if cfg.patch_size is None else cfg.patch_size
        return ViTEncoder(spec.in_channels, (h, w), patch, width, depth, heads, registers=cfg.vit_registers)

    build.__doc__ = (f"ViT-{size[0].upper()} (width {width}, depth {depth}, {heads} heads, MLP ratio {MLP_RATIO}), "
                     "random init; patch size from model.patch_size or auto_patch_size.")
    return build


vit_tiny, vit_small = vit("tiny"), vit("small")
