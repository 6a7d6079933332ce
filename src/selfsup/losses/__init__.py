"""Losses: pure functions plus thin ``nn.Module`` wrappers, each with its paper and formula."""
from selfsup.losses.gather import all_reduce_mean, gather, gather_no_grad, rank, world_size
from selfsup.losses.nt_xent import NTXentLoss, nt_xent

__all__ = ["NTXentLoss", "nt_xent", "all_reduce_mean", "gather", "gather_no_grad", "rank", "world_size"]
