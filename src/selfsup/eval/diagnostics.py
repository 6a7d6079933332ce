"""Collapse diagnostics of a batch of embeddings."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_embeddings(z: torch.Tensor) -> None:
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f"collapse diagnostics need a batch of at least 2 embeddings [N, d], got {tuple(z.shape)}")


def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the per-dimension std of the L2-normalised embeddings [N, d]:
    about 1/sqrt(d) for embeddings spread over the sphere, 0 when they collapse to a point
    (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, sec. 4.1)."""
    check_embeddings(z)
    return F.normalize(z, dim=1).std(dim=0).mean()


def effective_rank(z: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the normalised singular values of the centred embeddings [N, d]
    (Roy & Vetterli, "The effective rank", EUSIPCO 2007): d for isotropic embeddings, k for
    embeddings spanning k equal directions, 1 for a single direction or a single point (singular
    values within rounding of zero, eps x max(N, d) x max |z|, count as zero)."""
    check_embeddings(z)
    s = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    s = torch.where(s > torch.finfo(s.dtype).eps * max(z.shape) * z.abs().max(), s, torch.zeros_like(s))
    if not s.any():
        return torch.ones((), dtype=s.dtype)
    p = s / s.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return torch.exp(entropy)
