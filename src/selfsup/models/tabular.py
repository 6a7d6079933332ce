"""Encoders of table rows (kind ``tabular``: float rows [N, D], standardised per column by
the :class:`~selfsup.models.encoders.Encoder` wrapper)."""
from __future__ import annotations

from selfsup.config.schema import ModelConfig
from selfsup.models.encoders import InputSpec
from selfsup.models.heads import MLPHead


class TabularMLP(MLPHead):
    """Linear-BN-ReLU, Linear-BN-ReLU, Linear: D -> 8w -> 8w -> 8w (w = model.width), the depth
    of SCARF's encoder (Bahri et al., ICLR 2022) at our width; feature_dim = 8w."""

    def __init__(self, in_dim: int, width: int):
        super().__init__([in_dim, 8 * width, 8 * width, 8 * width])
        self.feature_dim = 8 * width


def mlp(cfg: ModelConfig, spec: InputSpec) -> TabularMLP:
    if spec.kind != "tabular" or len(spec.input_shape) != 1:
        raise ValueError(f"encoder mlp takes table rows [D] (kind tabular), got kind {spec.kind} of shape "
                         f"{tuple(spec.input_shape)}; use convnet-small for images")
    return TabularMLP(spec.input_shape[0], cfg.width)
