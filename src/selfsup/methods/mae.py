"""MAE (He, Chen, Xie, Li, Dollár, Girshick, "Masked Autoencoders Are Scalable Vision Learners",
CVPR 2022, arXiv 2111.06377): a ViT encoder sees a random 25 % of each image's patches; a light
decoder, given the encoded visible patches and a mask token in every other place, reconstructs
the pixels; the loss is the mean squared error of the masked patches' normalised pixels.

The paper's defaults: mask ratio 0.75 (per image, uniformly at random), decoder of 8 blocks of
width 512 (16 heads) on all tokens, per-patch normalised pixels as the target ("norm_pix"),
random resized crops (scale 0.2-1) and flips only. Its decoder's position embeddings are fixed
sine-cosine; here they are learned (so are the encoder's, as in :mod:`selfsup.models.vit`).
The optimiser side (AdamW, betas (0.9, 0.95), lr 1.5e-4 x batch / 256, weight decay 0.05,
warm-up 40 epochs) is the recipe's.

Probes (online and in ``selfsup eval``) read the encoder's class token of the whole image. The
paper's linear probe puts a BatchNorm without affine before its classifier; ``selfsup eval``'s
linear probe standardises the features, which is the same normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock

from selfsup.augment import ops
from selfsup.losses import mae_loss, patchify, random_masking, unpatchify
from selfsup.methods.base import Method, MethodContext, Params, ViewColumn
from selfsup.models import Encoder


@dataclass
class MAEParams(Params):
    mask_ratio: float = 0.75  # fraction of each image's patches removed before the encoder
    decoder_depth: int = 8  # transformer blocks of the decoder
    decoder_width: int = 512  # the decoder's token width
    decoder_heads: int = 16  # attention heads of each decoder block
    norm_pix: bool = True  # target: each patch's pixels normalised by their own mean and variance


@dataclass
class MaskedImages:
    """MAE's views: the augmented images [N, C, H, W] and their masks from
    :func:`selfsup.losses.random_masking` (keep [N, L_keep], mask [N, L], restore [N, L])."""

    images: torch.Tensor
    keep: torch.Tensor
    mask: torch.Tensor
    restore: torch.Tensor


class MAEDecoder(nn.Module):
    """Encoder tokens [N, P + L_keep, D] (P prefix tokens: class and registers) -> pixels of every
    patch [N, L, patch_values]: a linear map to ``width``, the mask token in the masked places,
    back to grid order (``restore``), learned position embeddings, ``depth`` pre-norm
    transformer blocks (MLP ratio 4), LayerNorm and a linear map to the pixels of a patch."""

    def __init__(self, in_dim: int, num_prefix: int, num_patches: int, patch_values: int, width: int, depth: int,
                 heads: int):
        super().__init__()
        if width < 1 or depth < 1 or heads < 1 or width % heads:
            raise ValueError(f"the MAE decoder needs positive method.decoder_width, decoder_depth and decoder_heads, "
                             f"the width divisible by the heads; got {width}, {depth}, {heads}")
        self.num_prefix = num_prefix
        self.embed = nn.Linear(in_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_prefix + num_patches, width))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*(EncoderBlock(heads, width, 4 * width, dropout=0.0, attention_dropout=0.0,
                                                   norm_layer=norm) for _ in range(depth)))
        self.norm = norm(width)
        self.out = nn.Linear(width, patch_values)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, tokens: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        prefix, visible = x[:, :self.num_prefix], x[:, self.num_prefix:]
        n, length = restore.shape
        patches = torch.cat([visible, self.mask_token.expand(n, length - visible.shape[1], -1)], dim=1)
        patches = patches.gather(1, restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = self.blocks(torch.cat([prefix, patches], dim=1) + self.pos_embed)
        return self.out(self.norm(x))[:, self.num_prefix:]


class MAE(Method):
    """Views: a random resized crop (``augment.crop_scale``, ``crop_ratio``) with a flip
    (``hflip_prob``) and a fresh random mask per image, drawn from the step's generator (so a
    resumed run masks as an uninterrupted one). The encoder (a ViT: ``model.encoder=vit-*``)
    encodes the visible patches only; :class:`MAEDecoder` predicts every patch; the loss is
    :func:`selfsup.losses.mae_loss` on the masked patches, against the patches of the normalised
    input the encoder sees.

    ``features``: the encoder's class token of the whole crop (computed without gradient, for
    the online probe); no ``embeddings`` (the loss acts on pixels)."""

    Params = MAEParams

    def __init__(self, params: MAEParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        vit = encoder.backbone
        if ctx.spec.kind != "image" or not hasattr(vit, "forward_tokens"):
            raise ValueError("mae encodes visible patches with a ViT: set model.encoder=vit-tiny or vit-small "
                             f"(got a {type(vit).__name__} on {ctx.spec.kind} data)")
        if not 0 < params.mask_ratio < 1:
            raise ValueError(f"method.mask_ratio must be in (0, 1), got {params.mask_ratio}")
        self.patch = vit.patch_size
        self.decoder = MAEDecoder(vit.feature_dim, vit.num_prefix_tokens, vit.num_patches,
                                  self.patch * self.patch * ctx.spec.in_channels, params.decoder_width,
                                  params.decoder_depth, params.decoder_heads)

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> MaskedImages:
        a = self.ctx.augment
        images = ops.random_resized_crop(x, generator, tuple(a.crop_scale), tuple(a.crop_ratio), a.hflip_prob)
        grid = (x.shape[-2] // self.patch, x.shape[-1] // self.patch)
        keep, mask, restore = random_masking(x.shape[0], grid[0] * grid[1], self.params.mask_ratio, generator,
                                             device=x.device)
        return MaskedImages(images, keep, mask, restore)

    def reconstruct(self, views: MaskedImages) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted patches, target patches), both [N, L, patch * patch * C]."""
        x = self.encoder.normalize(views.images)
        tokens = self.encoder.backbone.forward_tokens(x, views.keep)
        return self.decoder(tokens, views.restore), patchify(x, self.patch)

    def loss(self, views: MaskedImages, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        pred, target = self.reconstruct(views)
        loss = mae_loss(pred, target, views.mask, self.params.norm_pix)
        with torch.no_grad():
            features = self.encoder(views.images)
        return {"loss": loss, "features": features}

    def view_columns(self, x: torch.Tensor, views: MaskedImages) -> list[ViewColumn]:
        patches = patchify(views.images, self.patch)
        hidden = views.mask.unsqueeze(-1).to(patches.dtype)
        visible = unpatchify(patches * (1 - hidden) + 0.5 * hidden, self.patch, tuple(views.images.shape[-2:]))
        return [ViewColumn("crop", views.images),
                ViewColumn(f"visible {1 - self.params.mask_ratio:.0%} (grey: masked)", visible)]
