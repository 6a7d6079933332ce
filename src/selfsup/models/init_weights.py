"""``model.init``: start an encoder from weights on disk (never a download).

Accepted: a selfsup run folder or an ``encoder.safetensors`` (selfsup's own key names), or a
plain PyTorch / torchvision / timm state dict file, read with ``torch.load(weights_only=True)``
(a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is opened; a ``module.`` prefix from
DataParallel is dropped). torchvision / timm ResNet names (``conv1``, ``bn1``, ``layerN``) are mapped
onto selfsup's ResNets (``backbone.stem.0``, ``backbone.stem.1``, ``backbone.layerN``) and their
classifier (``fc``) is left out. The encoder keeps its own input normalisation (mean / std of the
data it trains on). One exception to "every key must match": the first convolution of a
plain ResNet state dict (ImageNet 7x7) on a CIFAR-stem selfsup ResNet (3x3, images <= 64 px) is
skipped with a log line and stays randomly initialised; every other mismatch is an error
naming the file and the first mismatching keys."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from selfsup.models.export import ENCODER_FILE, read_encoder_file

log = logging.getLogger(__name__)
NORMALISATION = ("mean", "std")  # the encoder's own, from the data it trains on
RESNET_NAMES = {"conv1": "stem.0", "bn1": "stem.1"}  # torchvision / timm ResNet -> selfsup (under backbone.)
STEM_CONV = "backbone.stem.0.weight"
SHOWN = 5  # mismatching keys named in the error


def read_init_state(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """(tensors, plain) of ``path``: selfsup's own key names (plain False) or a plain state dict."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model.init={path}: no such file or folder")
    if path.is_dir() or path.suffix == ".safetensors":
        return read_encoder_file(path)[1], False
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickles with code, damaged files: torch raises several types
        raise ValueError(f"model.init={path} is not a state dict torch.load(weights_only=True) can read ({err})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"model.init={path} holds no state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}, True


def selfsup_name(key: str, targets: set[str]) -> str | None:
    """A plain state dict's key as the selfsup encoder names it; None for a classifier's key."""
    if key in targets:
        return key
    head, _, rest = key.partition(".")
    if head == "fc":
        return None
    return f"backbone.{RESNET_NAMES.get(head, head)}.{rest}" if rest else f"backbone.{key}"


def load_init_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load ``path`` (see the module doc) into ``encoder`` in place; a ValueError naming the file
    and the first mismatching keys when the weights do not fit its architecture."""
    source, plain = read_init_state(path)
    target = {k: v for k, v in encoder.state_dict().items() if k not in NORMALISATION}
    if plain:
        mapped = ((selfsup_name(k, set(target)), v) for k, v in source.items())
        source = {k: v for k, v in mapped if k is not None}
    source = {k: v for k, v in source.items() if k not in NORMALISATION}
    shape = [k for k in target if k in source and source[k].shape != target[k].shape]
    if plain and STEM_CONV in shape:
        log.warning("model.init=%s: %s has shape %s, the encoder's stem %s (CIFAR stem for small images): "
                    "skipped, the stem stays randomly initialised", path, STEM_CONV,
                    tuple(source[STEM_CONV].shape), tuple(target[STEM_CONV].shape))
        shape.remove(STEM_CONV)
        del source[STEM_CONV]
        target = {k: v for k, v in target.items() if k != STEM_CONV}
    missing = [k for k in target if k not in source]
    unexpected = [k for k in source if k not in target]
    if missing or unexpected or shape:
        parts = [f"{what} {', '.join(keys[:SHOWN])}{' ...' if len(keys) > SHOWN else ''} ({len(keys)})"
                 for what, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("shape mismatch", [f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}"
                                                        for k in shape])) if keys]
        raise ValueError(f"model.init={path}: the weights do not fit this encoder: " + "; ".join(parts)
                         + f" (a selfsup run folder, an {ENCODER_FILE}, or a state dict of the same architecture)")
    encoder.load_state_dict(source, strict=False)  # strict but for the normalisation (and a skipped stem)
    log.info("model.init: %d tensors loaded from %s", len(source), path)
