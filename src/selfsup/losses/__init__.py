"""Losses: pure functions plus thin ``nn.Module`` wrappers, each with its paper and formula."""
from selfsup.losses.gather import all_reduce_mean, gather, gather_no_grad, rank, world_size
from selfsup.losses.nt_xent import NTXentLoss, nt_xent
from selfsup.losses.periodic import max_cross_correlation, normalized_psd, npsd_similarity, periodic_similarity
from selfsup.losses.simper import SimPerLoss, label_weights, simper_loss, soft_info_nce
from selfsup.losses.triplet import TripletLoss, triplet_loss

__all__ = ["NTXentLoss", "nt_xent", "all_reduce_mean", "gather", "gather_no_grad", "rank", "world_size",
           "max_cross_correlation", "normalized_psd", "npsd_similarity", "periodic_similarity",
           "SimPerLoss", "label_weights", "simper_loss", "soft_info_nce",
           "TripletLoss", "triplet_loss"]
