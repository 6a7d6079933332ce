"""`selfsup export RUN --format safetensors|onnx|torchvision|timm --out FILE`: each file loads back
in its own library (torchvision and timm with strict=True) and gives the run's encoder features
on the same raw 0..1 inputs, with the normalisation the format carries."""
import json
import shutil

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from selfsup.cli import EXPORT_FORMATS, main
from selfsup.config.schema import ModelConfig
from selfsup.engine.configure import compose_config
from selfsup.engine.train import train
from selfsup.models import InputSpec, build_encoder, export_encoder, load_encoder
from selfsup.models.export import read_encoder_file
from selfsup.models.formats import FORMATS

TINY = ["data.name=digits", "data.limit=200", "data.batch_size=64", "trainer.max_steps=2", "eval.after_train=false",
        "trainer.enable_progress_bar=false", "method.proj_hidden_dim=64", "method.proj_dim=32"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 2-step resnet18 run on 8x8 one-channel digits (so the CIFAR stem, and conv1 for 1 channel)."""
    path = tmp_path_factory.mktemp("runs") / "resnet18"
    train(compose_config(None, [*TINY, "model.encoder=resnet18", f"run.dir={path}"]))
    return path


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # raw inputs in 0..1


def encoder_features(path, images):
    with torch.no_grad():
        return load_encoder(path)(images)


@pytest.fixture(scope="module")
def expected(run_dir, images):
    """The run's own encoder's features of ``images``."""
    return encoder_features(run_dir, images)


def export(capsys, run, fmt, out):
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    return capsys.readouterr().out


def normalised(images, info):
    mean, std = torch.tensor(info["mean"]), torch.tensor(info["std"])
    return (images - mean[:, None, None]) / std[:, None, None]


def replacement_run(run_dir, tmp_path, encoder_name):
    """The run folder with its encoder file replaced by an untrained ``encoder_name`` (no training)."""
    run = tmp_path / encoder_name.replace(":", "-")
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("checkpoints"))
    meta = read_encoder_file(run_dir, tensors=False)[0]
    cfg, spec = ModelConfig(encoder=encoder_name, width=8), InputSpec(1, (1, 8, 8))
    export_encoder(build_encoder(cfg, spec, meta["mean"], meta["std"]), cfg, spec, run / "encoder.safetensors")
    return run


def test_the_cli_offers_the_formats_the_library_writes():
    assert EXPORT_FORMATS == FORMATS


def test_torchvision_state_dict_loads_strictly_and_gives_the_encoders_features(run_dir, images, expected, tmp_path,
                                                                              capsys):
    out = tmp_path / "resnet18.pth"
    message = export(capsys, run_dir, "torchvision", out)
    side = tmp_path / "resnet18.json"
    assert str(out) in message and str(side) in message
    info = json.loads(side.read_text())
    assert info["encoder"] == "resnet18" and info["in_channels"] == 1 and info["input_shape"] == [1, 8, 8]
    assert info["mean"] != [0.0] and info["feature_dim"] == 512

    net = torchvision.models.resnet18()  # the stem swap the docs describe, by hand
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(normalised(images, info)), expected, atol=1e-5, rtol=1e-5)

    scope = {"images": images, "mean": torch.tensor(info["mean"]), "std": torch.tensor(info["std"])}
    with torch.no_grad():
        exec("\n".join(info["load"]), scope)  # the JSON's own instructions, line by line
    torch.testing.assert_close(scope["features"], expected, atol=1e-5, rtol=1e-5)


def test_timm_state_dict_loads_strictly_and_gives_the_encoders_features(run_dir, images, expected, tmp_path, capsys):
    timm = pytest.importorskip("timm")
    out = tmp_path / "timm-resnet18.pth"
    export(capsys, run_dir, "timm", out)
    info = json.loads(out.with_suffix(".json").read_text())
    net = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=1)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(normalised(images, info)), expected, atol=1e-5, rtol=1e-5)
        scope = {"images": images, "mean": torch.tensor(info["mean"]), "std": torch.tensor(info["std"])}
        exec("\n".join(info["load"]), scope)
    torch.testing.assert_close(scope["features"], expected, atol=1e-5, rtol=1e-5)


def test_a_timm_encoder_exports_to_timm(run_dir, images, tmp_path, capsys):
    timm = pytest.importorskip("timm")
    run = replacement_run(run_dir, tmp_path, "timm:resnet10t")
    out = tmp_path / "resnet10t.pth"
    export(capsys, run, "timm", out)
    info = json.loads(out.with_suffix(".json").read_text())
    net = timm.create_model("resnet10t", pretrained=False, num_classes=0, in_chans=1)
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(normalised(images, info)), encoder_features(run, images),
                                   atol=1e-5, rtol=1e-5)


def test_onnx_takes_raw_inputs_at_any_batch_size(run_dir, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")  # torch.onnx.export's torch.export-based exporter translates through it
    out = tmp_path / "encoder.onnx"
    assert str(out) in export(capsys, run_dir, "onnx", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "inputs" and isinstance(inp.shape[0], str) and inp.shape[1:] == [1, 8, 8]
    encoder = load_encoder(run_dir)
    for n in (3, 7):  # neither is the batch size it was traced with
        batch = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(n))
        (features,) = session.run(None, {"inputs": batch.numpy()})
        with torch.no_grad():
            np.testing.assert_allclose(features, encoder(batch).numpy(), atol=1e-4, rtol=0)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["selfsup"])
    assert meta["encoder"] == "resnet18" and meta["mean"] == read_encoder_file(run_dir, tensors=False)[0]["mean"]


def test_safetensors_is_the_run_encoder_with_its_metadata(run_dir, images, expected, tmp_path, capsys):
    out = tmp_path / "copy.safetensors"
    export(capsys, run_dir, "safetensors", out)
    assert read_encoder_file(out, tensors=False)[0] == read_encoder_file(run_dir, tensors=False)[0]
    torch.testing.assert_close(encoder_features(out, images), expected, atol=0, rtol=0)


@pytest.mark.parametrize("fmt", ["torchvision", "timm"])
def test_an_encoder_without_a_twin_is_a_clear_error(run_dir, tmp_path, capsys, fmt):
    run = replacement_run(run_dir, tmp_path, "convnet-small")
    assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / "x.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"selfsup: error: encoder convnet-small has no {fmt} equivalent; its formats: safetensors, onnx"
    assert not list(tmp_path.glob("x.*"))


def test_a_timm_encoder_has_no_torchvision_twin(run_dir, tmp_path, capsys):
    pytest.importorskip("timm")
    run = replacement_run(run_dir, tmp_path, "timm:resnet10t")
    assert main(["export", str(run), "--format", "torchvision", "--out", str(tmp_path / "x.pth")]) == 2
    assert capsys.readouterr().err.strip() == ("selfsup: error: encoder timm:resnet10t has no torchvision equivalent; "
                                               "its formats: safetensors, onnx, timm")
