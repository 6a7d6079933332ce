"""Encoders by name, heads, and loading a trained encoder."""
from selfsup.models.encoders import ENCODERS, Encoder, InputSpec, build_encoder
from selfsup.models.export import ENCODER_FILE, export_encoder, load_encoder
from selfsup.models.heads import MLPHead, SimCLRProjectionHead
from selfsup.models.momentum import EmbeddingQueue, MomentumNetwork, cosine_momentum, ema_update
from selfsup.models.patch_grid import PatchGridEncoder
from selfsup.models import residual as _residual  # noqa: F401  (registers resnet-small, plainnet-small)
from selfsup.models import temporal as _temporal  # noqa: F401  (registers simper-featurizer, signal-conv1d)
from selfsup.models import tabular as _tabular  # noqa: F401  (registers mlp)

__all__ = [
    "ENCODERS", "Encoder", "InputSpec", "build_encoder", "ENCODER_FILE", "export_encoder", "load_encoder", "MLPHead", "PatchGridEncoder",
    "SimCLRProjectionHead", "EmbeddingQueue", "MomentumNetwork", "cosine_momentum", "ema_update",
]
