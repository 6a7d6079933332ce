"""The world model of ContextSSL: a causal transformer over a context of (state, action, next state).

Gupta, Wang, Wang, Jaakkola, Jegelka. "In-Context Symmetries: Self-Supervised Learning through
Contextual World Models", NeurIPS 2024 (arXiv 2405.18193).

Tokens. The pair k (state z_k, action a_k, next state z+_k) becomes two tokens

    t_2k = [z_k || a_k],    t_2k+1 = [z+_k || 0],

and a sequence holds ``block_size / 2`` pairs of different objects. There is no positional
embedding: the context is a set of pairs, told apart by the attention mask alone.

Attention mask (True = may attend). ``pair_mask``: causal, except that a target token never sees
its own source, M[2k+1, 2k] = False, so z+_k must be predicted from the other pairs (the context)
and not copied from z_k. ``random_context_mask`` (training only): each query row keeps each earlier
*pair* with probability 1 - mask_prob (both of its tokens together), and always itself; a new mask
is drawn in every layer, shared by the batch and the heads. The paper shows these two and the
auxiliary predictor keep the model from the shortcut of ignoring the context.

Inference. A fixed context is encoded once (``build_cache``: the keys and values of every layer,
under the pair mask, no random masking) and reused for every query token (``query``): each query
sees the whole context and itself, exactly as the last token of a full forward pass over
[context || query] does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.models.heads import MLPHead


def interleave_pairs(z: torch.Tensor, z_next: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Tokens [2N, d + a] of N pairs: row 2k is [z_k || a_k], row 2k+1 is [z+_k || 0]."""
    if z.dim() != 2 or z.shape != z_next.shape:
        raise ValueError(f"states must be two [N, d] tensors of the same shape, got {tuple(z.shape)} and {tuple(z_next.shape)}")
    if actions.dim() != 2 or actions.shape[0] != z.shape[0]:
        raise ValueError(f"actions must be [N, a] with N = {z.shape[0]}, got {tuple(actions.shape)}")
    sources = torch.cat([z, actions.to(z.dtype)], dim=1)
    targets = torch.cat([z_next, torch.zeros_like(sources[:, z.shape[1]:])], dim=1)
    return torch.stack([sources, targets], dim=1).reshape(2 * z.shape[0], sources.shape[1])


def pack_sequences(tokens: torch.Tensor, block_size: int) -> torch.Tensor:
    """[L, D] tokens -> [ceil(L / block_size), block_size, D], the last sequence zero-padded at its
    end (causal attention: padding never changes the real tokens' outputs)."""
    length = tokens.shape[0]
    count = -(-length // block_size)
    padded = F.pad(tokens, (0, 0, 0, count * block_size - length))
    return padded.view(count, block_size, tokens.shape[1])


def unpack_sequences(outputs: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`pack_sequences`: [S, T, D] -> the first ``length`` tokens, [length, D]."""
    return outputs.reshape(-1, outputs.shape[-1])[:length]


def pair_mask(length: int, device=None) -> torch.Tensor:
    """bool [T, T]: causal, and target tokens (odd positions) never see their own source."""
    mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    odd = torch.arange(1, max(length, 1), 2, device=device)
    mask[odd, odd - 1] = False
    return mask


def random_context_mask(length: int, mask_prob: float, generator: Optional[torch.Generator] = None,
                        device=None) -> torch.Tensor:
    """bool [T, T] of kept entries: every (query row, context pair) is kept with probability
    1 - mask_prob, the pair's two columns together; the diagonal is always kept."""
    if length % 2:
        raise ValueError(f"a context of pairs has an even length, got {length}")
    draw = torch.rand(length, length // 2, generator=generator, device=device) >= mask_prob
    return draw.repeat_interleave(2, dim=1) | torch.eye(length, dtype=torch.bool, device=device)


def query_context_mask(queries: int, context_length: int, mask_prob: float,
                       generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
    """bool [Q, 1, 1, C + 1] for Q queries after a cached context of C tokens: each query keeps
    each context pair with probability 1 - mask_prob (its two columns together), and itself:
    the row a query token gets from :func:`random_context_mask` in training."""
    draw = torch.rand(queries, context_length // 2, generator=generator, device=device) >= mask_prob
    keep = torch.cat([draw.repeat_interleave(2, dim=1), torch.ones(queries, 1, dtype=torch.bool, device=device)], 1)
    return keep.view(queries, 1, 1, context_length + 1)


def expected_visible_pairs(mask_prob: float, block_size: int, context_pairs: Optional[int] = None) -> float:
    """Expected number of context pairs one token attends to in one layer in training, under
    the pair mask and :func:`random_context_mask`. The token of pair k (k = 0 .. P-1, P =
    block_size / 2) has k earlier pairs, each kept with probability 1 - p, so it sees
    (1 - p) k; over the positions of a sequence

        E = (1 - p) (P - 1) / 2,

    (``context_pairs`` given: the token after that many pairs, (1 - p) * context_pairs). The
    paper's mask_prob 0.9 with blocks of 128 gives 3.15; 0.9 with blocks of 32 gives 0.75, and
    half the tokens then see no context at all."""
    pairs = (block_size // 2 - 1) / 2 if context_pairs is None else context_pairs
    return (1 - mask_prob) * pairs


def blind_fraction(mask_prob: float, block_size: int) -> float:
    """The fraction of a sequence's tokens that see no context pair in a layer: mean_k p^k."""
    pairs = block_size // 2
    return sum(mask_prob ** k for k in range(pairs)) / pairs


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(LN(x)), then x + MLP(LN(x)) (GELU, 4x)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                past: Optional[tuple[torch.Tensor, torch.Tensor]] = None):
        """x [B, T, W]; mask bool [T, T(+past)] or None (attend to all); past: keys and values
        [1, H, C, W/H] of a context that every sequence of the batch attends to first.
        Returns the new x and this layer's keys and values (past included)."""
        b, t, w = x.shape
        q, k, v = (y.view(b, t, self.heads, w // self.heads).transpose(1, 2)
                   for y in self.qkv(self.ln1(x)).chunk(3, dim=-1))
        if past is not None:
            k = torch.cat([past[0].expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([past[1].expand(b, -1, -1, -1), v], dim=2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, w))
        return x + self.mlp(self.ln2(x)), (k, v)


@dataclass
class ContextCache:
    """Keys and values [1, H, C, W/H] of every layer for a fixed context of C tokens."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        return self.layers[0][0].shape[2]


class ContextTransformer(nn.Module):
    """Linear(state + action -> width), ``depth`` pre-LN blocks, LayerNorm, Linear(width -> out_dim);
    no positional embedding, dropout 0 (the original's GPT). The paper's 3DIEBench model: width
    2048, depth 3, 4 heads, block_size 128, mask_prob 0.9.

    ``state_norm``: each token's state is standardised over its features (a LayerNorm without
    parameters) before the embedding, so the action keeps its weight in the token whatever the
    encoder's scale. Encoder features grow in training (convnet-small on RotColor-MNIST: norm 92
    at init, 2,700-4,600 after it) and drown the 4-number action; the original's ResNet-18
    features are O(1) per feature, the scale the standardisation restores. Off by default (the
    original's raw tokens).

    ``forward(tokens [S, T, D])`` -> [S, T, out_dim] under the pair mask, and in training mode
    also the random context mask (``mask_prob``; pass ``generator`` for a seeded draw)."""

    def __init__(self, state_dim: int, action_dim: int, out_dim: int, width: int = 256, depth: int = 2,
                 heads: int = 4, block_size: int = 128, mask_prob: float = 0.9, state_norm: bool = False):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        if block_size < 2 or block_size % 2:
            raise ValueError(f"block_size counts tokens of pairs: an even number >= 2, got {block_size}")
        if not 0 <= mask_prob < 1:
            raise ValueError(f"mask_prob must be in [0, 1), got {mask_prob}")
        self.state_dim, self.action_dim = state_dim, action_dim
        self.block_size, self.mask_prob, self.state_norm = block_size, mask_prob, state_norm
        self.embed = nn.Linear(state_dim + action_dim, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_dim)

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.shape[-1] != self.state_dim + self.action_dim:
            raise ValueError(f"tokens must have state_dim + action_dim = {self.state_dim + self.action_dim} "
                             f"features, got {tokens.shape[-1]}")

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[..., state_dim + action_dim] -> [..., width], the state standardised first (``state_norm``)."""
        if self.state_norm:
            state, action = tokens.split([self.state_dim, self.action_dim], dim=-1)
            tokens = torch.cat([F.layer_norm(state, (self.state_dim,)), action], dim=-1)
        return self.embed(tokens)

    def forward(self, tokens: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        self._check(tokens)
        length = tokens.shape[1]
        if length > self.block_size:
            raise ValueError(f"sequences of {length} tokens exceed block_size {self.block_size}")
        mask = pair_mask(length, tokens.device)
        x = self.embed_tokens(tokens)
        for block in self.blocks:
            layer_mask = mask
            if self.training and self.mask_prob > 0:
                layer_mask = mask & random_context_mask(length, self.mask_prob, generator, tokens.device)
            x, _ = block(x, layer_mask)
        return self.head(self.ln(x))

    def build_cache(self, context: torch.Tensor, mask_prob: float = 0.0,
                    generator: Optional[torch.Generator] = None) -> ContextCache:
        """Keys and values of every layer for one context, tokens [C, D] (C even, may be 0),
        under the pair mask; ``mask_prob`` > 0 adds the training's random context mask (a draw
        per layer from ``generator``), so the context tokens see one another as in training."""
        self._check(context)
        if context.shape[0] % 2:
            raise ValueError(f"a context holds whole pairs: an even number of tokens, got {context.shape[0]}")
        x = self.embed_tokens(context.unsqueeze(0))
        mask = pair_mask(context.shape[0], context.device)
        layers = []
        for block in self.blocks:
            layer_mask = mask
            if mask_prob > 0:
                layer_mask = mask & random_context_mask(context.shape[0], mask_prob, generator, context.device)
            x, kv = block(x, layer_mask)
            layers.append(kv)
        return ContextCache(layers)

    def query(self, tokens: torch.Tensor, cache: ContextCache, mask_prob: float = 0.0,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Outputs [Q, out_dim] of Q query tokens [Q, D], each read after the cached context on
        its own (the queries do not see one another). ``mask_prob`` > 0: each query sees each
        context pair with probability 1 - mask_prob, a draw per query and layer, as a token after
        that context does in training."""
        self._check(tokens)
        if cache.length + 1 > self.block_size:
            raise ValueError(f"a context of {cache.length} tokens and a query exceed block_size {self.block_size}")
        x = self.embed_tokens(tokens.unsqueeze(1))
        for block, past in zip(self.blocks, cache.layers):
            mask = None
            if mask_prob > 0:
                mask = query_context_mask(len(tokens), cache.length, mask_prob, generator, tokens.device)
            x, _ = block(x, mask, past)
        return self.head(self.ln(x)).squeeze(1)


class AuxiliaryPredictor(MLPHead):
    """ContextSSL's auxiliary predictor: from the normalised transformer output to the absolute
    transformation parameters of the pair's second view, MLP d-h-h-p (the original: 512-1024-1024-6)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 1024):
        super().__init__([in_dim, hidden_dim, hidden_dim, out_dim], batch_norm=False)
