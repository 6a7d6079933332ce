"""Losses: pure functions plus thin ``nn.Module`` wrappers, each with its paper and formula."""
from selfsup.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss
from selfsup.losses.byol import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine, normalized_mse, simsiam_loss
from selfsup.losses.gather import all_reduce_mean, gather, gather_no_grad, rank, world_size
from selfsup.losses.infonce import InfoNCELoss, info_nce
from selfsup.losses.nt_xent import NTXentLoss, nt_xent
from selfsup.losses.periodic import max_cross_correlation, normalized_psd, npsd_similarity, periodic_similarity
from selfsup.losses.simper import SimPerLoss, label_weights, simper_loss, soft_info_nce
from selfsup.losses.triplet import TripletLoss, triplet_loss
from selfsup.losses.supcon import SupConLoss, supcon_loss, supcon_queue_terms, supcon_terms
from selfsup.losses.vicreg import VICRegLoss, vicreg_loss, vicreg_terms

__all__ = ["NTXentLoss", "nt_xent", "all_reduce_mean", "gather", "gather_no_grad", "rank", "world_size",
           "max_cross_correlation", "normalized_psd", "npsd_similarity", "periodic_similarity",
           "SimPerLoss", "label_weights", "simper_loss", "soft_info_nce",
           "TripletLoss", "triplet_loss",
           "BarlowTwinsLoss", "barlow_twins_loss", "BYOLLoss", "SimSiamLoss", "byol_loss", "negative_cosine",
           "normalized_mse", "simsiam_loss", "InfoNCELoss", "info_nce", "SupConLoss", "supcon_loss",
           "supcon_queue_terms", "supcon_terms", "VICRegLoss", "vicreg_loss", "vicreg_terms"]
