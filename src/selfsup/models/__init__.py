"""Encoders by name (the table in ``selfsup.models.registry``), heads, and loading a trained encoder."""
from selfsup.models.encoders import Encoder, InputSpec, build_encoder
from selfsup.models.export import ENCODER_FILE, export_encoder, load_encoder
from selfsup.models.heads import MLPHead, SimCLRProjectionHead
from selfsup.models.momentum import EmbeddingQueue, MomentumNetwork, cosine_momentum, ema_update
from selfsup.models.patch_grid import PatchGridEncoder
from selfsup.models.registry import ENCODERS

__all__ = [
    "ENCODERS", "Encoder", "InputSpec", "build_encoder", "ENCODER_FILE", "export_encoder", "load_encoder", "MLPHead", "PatchGridEncoder",
    "SimCLRProjectionHead", "EmbeddingQueue", "MomentumNetwork", "cosine_momentum", "ema_update",
]
