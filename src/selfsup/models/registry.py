"""The encoder registry: every built-in encoder, by ``model.encoder``, in one table.

An entry is a builder ``(cfg: ModelConfig, spec: InputSpec) -> nn.Module`` returning a
backbone with ``feature_dim`` (and ``forward_stages`` for per-layer probing).
``model.encoder=timm:<name>`` is handled beside the table, in ``selfsup.models.encoders``.
"""
from __future__ import annotations

from selfsup.core.registry import Registry

ENCODERS = Registry("encoder", {
    "convnet-small": "selfsup.models.encoders:convnet_small",
    "resnet18": "selfsup.models.encoders:resnet18",
    "resnet34": "selfsup.models.encoders:resnet34",
    "resnet50": "selfsup.models.encoders:resnet50",
    "resnet-small": "selfsup.models.residual:resnet_small",
    "plainnet-small": "selfsup.models.residual:plainnet_small",
    "vit-tiny": "selfsup.models.vit:vit_tiny",
    "vit-small": "selfsup.models.vit:vit_small",
    "simper-featurizer": "selfsup.models.temporal:simper_featurizer",
    "signal-conv1d": "selfsup.models.temporal:signal_conv1d",
    "mlp": "selfsup.models.tabular:mlp",
})
