"""Losses: pure functions plus thin ``nn.Module`` wrappers, each with its paper and formula."""
from selfsup.losses.barlow_twins import BarlowTwinsLoss, barlow_twins_loss
from selfsup.losses.byol import BYOLLoss, SimSiamLoss, byol_loss, negative_cosine, normalized_mse, simsiam_loss
from selfsup.losses.dino import DINOLoss, dino_loss, teacher_temperature, update_center
from selfsup.losses.infonce import InfoNCELoss, info_nce
from selfsup.losses.mae import MAELoss, mae_loss, patchify, random_masking, unpatchify
from selfsup.losses.mocov3 import MoCoV3Loss, mocov3_contrast, mocov3_loss
from selfsup.losses.nnclr import NNCLRLoss, nearest_neighbour, nnclr_loss
from selfsup.losses.nt_xent import NTXentLoss, nt_xent
from selfsup.losses.periodic import max_cross_correlation, normalized_psd, npsd_similarity, periodic_similarity
from selfsup.losses.simper import SimPerLoss, label_weights, simper_loss, soft_info_nce
from selfsup.losses.triplet import TripletLoss, triplet_loss
from selfsup.losses.supcon import SupConLoss, supcon_loss, supcon_queue_terms, supcon_terms
from selfsup.losses.swav import SwAVLoss, sinkhorn_knopp, swav_loss
from selfsup.losses.vicreg import VICRegLoss, vicreg_loss, vicreg_terms

__all__ = ["NTXentLoss", "nt_xent",
           "max_cross_correlation", "normalized_psd", "npsd_similarity", "periodic_similarity",
           "SimPerLoss", "label_weights", "simper_loss", "soft_info_nce",
           "TripletLoss", "triplet_loss",
           "BarlowTwinsLoss", "barlow_twins_loss", "BYOLLoss", "SimSiamLoss", "byol_loss", "negative_cosine",
           "normalized_mse", "simsiam_loss", "InfoNCELoss", "info_nce", "SupConLoss", "supcon_loss",
           "supcon_queue_terms", "supcon_terms", "VICRegLoss", "vicreg_loss", "vicreg_terms",
           "DINOLoss", "dino_loss", "teacher_temperature", "update_center",
           "SwAVLoss", "sinkhorn_knopp", "swav_loss",
           "NNCLRLoss", "nearest_neighbour", "nnclr_loss",
           "MoCoV3Loss", "mocov3_contrast", "mocov3_loss",
           "MAELoss", "mae_loss", "patchify", "random_masking", "unpatchify"]
