
import numpy as np
import pytest
import torch

from selfsup.config.schema import AugmentConfig, ModelConfig
from selfsup.eval.plots import embedding_by_target
from selfsup.eval.regression import regression_probe
from selfsup.methods import METHODS, MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder


def _simper(spec: InputSpec, encoder: str, info: dict, **params):
    cls, p = resolve_method_params({"name": "simper", **params})
    enc = build_encoder(ModelConfig(encoder=encoder, width=4), spec, [0.5] * spec.in_channels, [0.25] * spec.in_channels)
    return cls(p, enc, MethodContext(spec, 10, AugmentConfig(), info))


@pytest.mark.parametrize("similarity", ["mxcorr", "npsd"])
def test_simper_on_clips_views_loss_features_and_gradients(similarity):
    torch.manual_seed(0)
    spec = InputSpec(1, (24, 1, 12, 12), "clip")
    method = _simper(spec, "simper-featurizer", {"fps": 12.0}, num_speeds=3, speed_range=[0.5, 2.0], similarity=similarity)
    x = torch.rand(2, 24, 1, 12, 12)
    views, speeds = method.make_views(x, torch.Generator().manual_seed(1))
    assert views.shape == (2, 6, 12, 1, 12, 12) and speeds.shape == (2, 6)  # T = 24 // 2
    out = method.loss((views, speeds), torch.tensor([3, -1]))
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    assert out["features"].shape == (2, method.encoder.feature_dim) == (2, 25)
    assert out["embeddings"].shape == (2, 12)
    out["loss"].backward()
    grads = [p.grad for p in method.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert method.band == (0.5, 6.0)  # default band: every bin but DC, up to Nyquist


def test_simper_on_signals_without_a_frame_rate_uses_cycles_per_step():
    spec = InputSpec(1, (40, 1), "signal")
    method = _simper(spec, "signal-conv1d", {}, num_speeds=2, frames=16, similarity="npsd")
    assert method.fps == 1.0 and method.band == (0.5 / 16, 0.5)
    views = method.make_views(torch.randn(3, 40, 1), torch.Generator().manual_seed(0))
    assert torch.isfinite(method.loss(views, torch.zeros(3, dtype=torch.long))["loss"])


def test_simper_errors_name_the_fix():
    clip = InputSpec(1, (20, 1, 8, 8), "clip")
    with pytest.raises(ValueError, match="one value per frame"):
        cls, p = resolve_method_params({"name": "simper"})
        cls(p, build_encoder(ModelConfig(encoder="convnet-small", width=4), InputSpec(1, (1, 8, 8), "image"), [0.5], [0.25]),
            MethodContext(InputSpec(1, (1, 8, 8), "image"), 10, AugmentConfig()))
    with pytest.raises(ValueError, match="method.similarity"):
        _simper(clip, "simper-featurizer", {"fps": 10.0}, similarity="cosine")
    with pytest.raises(ValueError, match="exceeds the sequence length"):
        _simper(clip, "simper-featurizer", {"fps": 10.0}, frames=30)
    assert "simper" in METHODS


def test_regression_probe_metrics():
    g = torch.Generator().manual_seed(0)
    target = 0.5 + 4.5 * torch.rand(300, generator=g, dtype=torch.float64)
    informative = torch.stack([target, torch.randn(300, generator=g, dtype=torch.float64)], 1)
    metrics, prediction = regression_probe(informative[:200], target[:200], informative[200:], target[200:])
    assert metrics["mae"] < 0.01 and metrics["r2"] > 0.999 and metrics["mape"] < 1.0
    truth = target[200:].numpy()
    assert metrics["mape"] == pytest.approx(100 * np.mean(np.abs(prediction - truth) / truth))
    noise = torch.randn(300, 5, generator=g, dtype=torch.float64)
    metrics, _ = regression_probe(noise[:200], target[:200], noise[200:], target[200:])
    assert metrics["r2"] < 0.1 and metrics["mae"] > 0.8  # the mean predictor: MAE about 1.1 for U(0.5, 5)


def test_embedding_plot_is_written(tmp_path):
    t = torch.linspace(0.5, 5, 50)
    features = torch.stack([torch.cos(t), torch.sin(t), t], 1)
    path = embedding_by_target(features, t, "freq", tmp_path / "plots" / "e.png", "test")
    assert path.exists() and path.stat().st_size > 1000
