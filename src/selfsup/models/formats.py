"""A trained encoder in the formats other tools load: safetensors, ONNX, torchvision, timm.

The input normalisation travels with every format:

- ``safetensors``: selfsup's own ``encoder.safetensors`` (weights, normalisation and the
  architecture in its metadata); :func:`selfsup.models.load_encoder` reads it back.
- ``onnx``: the graph's input ``inputs`` takes raw inputs (images in 0..1, [batch, C, H, W],
  any batch size) and normalises them itself; its output is ``features`` [batch,
  feature_dim]; its metadata property ``selfsup`` holds the encoder name, input shape, mean
  and std.
- ``torchvision`` (resnet18 / resnet34 / resnet50 encoders) and ``timm`` (those and
  ``timm:<name>`` encoders): a state dict (``torch.save``; read it with
  ``torch.load(FILE, weights_only=True)``) that the library's own model loads with
  ``strict=True``, and ``FILE`` with suffix ``.json`` beside it: mean, std, input shape,
  channels, encoder name and the load instructions, since those models have no normalisation
  layer. The user must change the model the way the encoder was built:

  - CIFAR stem (images up to 64 px, or ``model.cifar_stem=true``):
    ``net.conv1 = nn.Conv2d(C, 64, kernel_size=3, stride=1, padding=1, bias=False)`` and
    ``net.maxpool = nn.Identity()``; else, for C != 3 input channels,
    ``net.conv1 = nn.Conv2d(C, 64, kernel_size=7, stride=2, padding=3, bias=False)``;
  - torchvision: ``net.fc = nn.Identity()`` (the encoder has no classifier);
    timm: ``timm.create_model(name, num_classes=0, in_chans=C)``;

  then ``net.load_state_dict(torch.load(FILE, weights_only=True), strict=True)``, ``net.eval()``
  and ``features = net((images - mean[:, None, None]) / std[:, None, None])`` equal the
  encoder's features of ``images`` in 0..1.

The other encoders (convnet-small, resnet-small, plainnet-small, the ViTs, the temporal and
tabular encoders, and any encoder trained on patches, whose whole-image features average a
patch grid) have no torchvision or timm twin: safetensors and onnx only.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from selfsup.models.encoders import Encoder, ResNetEncoder, TimmEncoder
from selfsup.models.export import ENCODER_FILE, load_encoder, read_encoder_file
from selfsup.models.patch_grid import PatchGridEncoder

FORMATS = ("safetensors", "onnx", "torchvision", "timm")


def supported_formats(encoder: Encoder) -> tuple[str, ...]:
    """The formats ``encoder`` can be written in."""
    if isinstance(encoder, PatchGridEncoder):
        return "safetensors", "onnx"
    if isinstance(encoder.backbone, ResNetEncoder):
        return FORMATS
    if isinstance(encoder.backbone, TimmEncoder):
        return "safetensors", "onnx", "timm"
    return "safetensors", "onnx"


def export_as(encoder_file: str | Path, fmt: str, out: str | Path) -> list[Path]:
    """Write the encoder of ``encoder_file`` (an ``encoder.safetensors`` or a run folder) to
    ``out`` in format ``fmt`` (one of :data:`FORMATS`); returns the files written (for
    torchvision and timm: ``out`` and its ``.json`` beside it)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    encoder_file = Path(encoder_file)
    if encoder_file.is_dir():
        encoder_file = encoder_file / ENCODER_FILE
    meta = read_encoder_file(encoder_file, tensors=False)[0]
    encoder = load_encoder(encoder_file)
    name = meta["model"]["encoder"]
    if fmt not in supported_formats(encoder):
        why = " (trained on patches: its features average a patch grid)" if isinstance(encoder, PatchGridEncoder) else ""
        raise ValueError(f"encoder {name} has no {fmt} equivalent{why}; its formats: {', '.join(supported_formats(encoder))}")
    out = Path(out)
    if fmt in ("torchvision", "timm") and out.suffix == ".json":
        raise ValueError(f"--out {out}: the load instructions go to <out>.json beside the weights; name the weights "
                         f"file e.g. {out.with_suffix('.pth')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(encoder_file, tmp)
        os.replace(tmp, out)
        return [out]
    if fmt == "onnx":
        return [export_onnx(encoder, meta, out)]
    state, lines = (torchvision_state if fmt == "torchvision" else timm_state)(encoder, meta, out)
    save_atomic(lambda path: torch.save(state, path), out)
    side = out.with_suffix(".json")
    info = {
        "format": fmt, "encoder": name, "in_channels": meta["spec"]["in_channels"],
        "input_shape": meta["spec"]["input_shape"], "feature_dim": encoder.feature_dim,
        "mean": meta["mean"], "std": meta["std"],
        "input": "images in 0..1, [N, C, H, W]; normalise each channel c: (x - mean[c]) / std[c]",
        "load": lines,
    }
    save_atomic(lambda path: Path(path).write_text(json.dumps(info, indent=2) + "\n"), side)
    return [out, side]


def save_atomic(write, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def stem_lines(backbone: ResNetEncoder) -> list[str]:
    """The changes to a stock ResNet that give it this encoder's stem."""
    conv = backbone.stem[0]
    lines = []
    if (conv.in_channels, conv.kernel_size, conv.stride, conv.padding) != (3, (7, 7), (2, 2), (3, 3)):
        lines.append(f"net.conv1 = nn.Conv2d({conv.in_channels}, 64, kernel_size={conv.kernel_size[0]}, "
                     f"stride={conv.stride[0]}, padding={conv.padding[0]}, bias=False)")
    if isinstance(backbone.stem[3], nn.Identity):
        lines.append("net.maxpool = nn.Identity()")
    return lines


def resnet_state(backbone: ResNetEncoder) -> dict[str, torch.Tensor]:
    """The backbone's tensors under the names of torchvision's (and timm's) ResNet, no ``fc``."""
    net = nn.Module()
    net.conv1, net.bn1 = backbone.stem[0], backbone.stem[1]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        setattr(net, name, getattr(backbone, name))
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def usage_lines(out: Path, meta: dict) -> list[str]:
    return [f"net.load_state_dict(torch.load({str(out)!r}, weights_only=True), strict=True)", "net.eval()",
            f"features = net((images - mean[:, None, None]) / std[:, None, None])  # images in 0..1, "
            f"[N, {meta['spec']['in_channels']}, H, W]; mean, std: torch tensors of this file's lists"]


def torchvision_state(encoder: Encoder, meta: dict, out: Path) -> tuple[dict, list[str]]:
    """The state dict for ``torchvision.models.<encoder>()`` and the lines that load it."""
    backbone = encoder.backbone
    lines = ["import torch, torchvision", "from torch import nn", f"net = torchvision.models.{meta['model']['encoder']}()",
             *stem_lines(backbone), "net.fc = nn.Identity()", *usage_lines(out, meta)]
    return resnet_state(backbone), lines


def timm_state(encoder: Encoder, meta: dict, out: Path) -> tuple[dict, list[str]]:
    """The state dict for ``timm.create_model(name, num_classes=0, in_chans=C)`` and the lines that load it."""
    backbone, name = encoder.backbone, meta["model"]["encoder"]
    if isinstance(backbone, TimmEncoder):
        state = {k: v.detach().cpu().contiguous() for k, v in backbone.net.state_dict().items()}
        name, stem = name.split(":", 1)[1], []
    else:  # timm's ResNets name their tensors as torchvision's do
        state, stem = resnet_state(backbone), stem_lines(backbone)
    lines = ["import timm, torch", "from torch import nn",
             f"net = timm.create_model({name!r}, pretrained=False, num_classes=0, in_chans={meta['spec']['in_channels']})",
             *stem, *usage_lines(out, meta)]
    return state, lines


def export_onnx(encoder: Encoder, meta: dict, out: Path) -> Path:
    """``encoder`` (normalisation included) as ONNX through ``torch.onnx.export`` (the
    torch.export-based exporter, which needs the onnx and onnxscript packages): input
    ``inputs`` [batch, *input_shape] raw (images in 0..1), output ``features``
    [batch, feature_dim], batch size free."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: `pip install 'selfsup[onnx]'`")
    example = torch.rand(2, *meta["spec"]["input_shape"])
    program = torch.onnx.export(encoder.eval(), (example,), dynamo=True, verbose=False, input_names=["inputs"],
                                output_names=["features"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.model.metadata_props["selfsup"] = json.dumps({
        "encoder": meta["model"]["encoder"], "input_shape": meta["spec"]["input_shape"], "mean": meta["mean"],
        "std": meta["std"], "input": "raw (images in 0..1); the graph normalises them"})
    save_atomic(lambda path: program.save(path, external_data=False), out)
    return out
