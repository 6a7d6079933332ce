"""Encoders as safetensors files: weights plus what is needed to rebuild the architecture."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import safe_open
from safetensors.torch import save_file

from selfsup.config.schema import ModelConfig
from selfsup.core.patches import PatchGrid
from selfsup.models.encoders import Encoder, InputSpec, build_encoder
from selfsup.models.patch_grid import PatchGridEncoder

ENCODER_FILE = "encoder.safetensors"


def export_encoder(encoder: Encoder, model_cfg, spec: InputSpec, path: str | Path) -> Path:
    """Write the encoder (normalisation included) to ``path`` atomically; the architecture goes
    in the file's metadata, so :func:`load_encoder` needs nothing else (for a
    :class:`PatchGridEncoder`, its patch grid too)."""
    path = Path(path)
    meta = {
        "model": OmegaConf.to_container(OmegaConf.structured(model_cfg)) if not isinstance(model_cfg, dict) else model_cfg,
        "spec": dataclasses.asdict(spec),
        "mean": encoder.mean.flatten().tolist(),
        "std": encoder.std.flatten().tolist(),
    }
    if isinstance(encoder, PatchGridEncoder):
        meta["patch_grid"] = {"patch": encoder.grid.patch, "gap": encoder.grid.gap}
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"selfsup": json.dumps(meta)})
    os.replace(tmp, path)
    return path


def read_encoder_file(path: str | Path, map_location: str = "cpu", tensors: bool = True) -> tuple[dict, dict]:
    """The metadata (model config, input spec, mean, std, patch grid) and, with ``tensors``, the
    tensors of an ``encoder.safetensors`` file or of a run folder's."""
    path = Path(path)
    if path.is_dir():
        path = path / ENCODER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass a run folder whose training finished, or an {ENCODER_FILE}")
    try:
        with safe_open(str(path), framework="pt", device=map_location) as f:
            meta = json.loads((f.metadata() or {})["selfsup"])
            state = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as err:  # safetensors raises its own error type for damaged files
        raise ValueError(f"{path} is not a selfsup encoder file ({err})") from err
    return meta, state


def load_encoder(path: str | Path, map_location: str = "cpu") -> Encoder:
    """The trained encoder of a run folder or of an ``encoder.safetensors`` file, in eval mode.
    It takes raw inputs (images in 0..1, [N, C, H, W]) and returns features [N, feature_dim]."""
    meta, state = read_encoder_file(path, map_location)
    try:
        spec = InputSpec(meta["spec"]["in_channels"], tuple(meta["spec"]["input_shape"]), meta["spec"]["kind"])
        model_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), meta["model"]))
        mean, std = meta["mean"], meta["std"]
    except (KeyError, TypeError, ValueError, OmegaConfBaseException) as err:
        raise ValueError(f"{path}'s selfsup metadata is incomplete or damaged ({type(err).__name__}: {err}); "
                         "export the encoder again from its run folder") from err
    encoder = build_encoder(model_cfg, spec, mean, std)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as err:  # missing / unexpected keys, size mismatches
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"{path}: the weights do not match the architecture its metadata describes "
                         f"({model_cfg.encoder}): {first}; export the encoder again from its run folder") from None
    if "patch_grid" in meta:  # trained on patches: whole-image features average the grid's patches
        encoder = PatchGridEncoder(encoder, PatchGrid(meta["patch_grid"]["patch"], meta["patch_grid"]["gap"], jitter=0))
    return encoder.eval()
