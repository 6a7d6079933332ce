"""SimPer's comparison: SimCLR on clips as the paper trains it (``method.embedding=clip``: NT-Xent
on the pooled clip embedding) beside the spectral variant, and the four readouts of SimPer's
evaluation (spectral probe, pooled clip embedding, linear head on the per-frame series,
fine-tuning), each shown to succeed on a fixture that carries the target and to fail when the
training targets are shuffled."""
import math

import pytest
import torch

from selfsup.config.schema import AugmentConfig, ModelConfig
from selfsup.data import ArrayDataset
from selfsup.eval.features import extract_features
from selfsup.eval.finetune import finetune_regression
from selfsup.eval.regression import readout_features, readout_regression, regression_probe
from selfsup.methods import MethodContext, resolve_method_params
from selfsup.models import InputSpec, build_encoder
from selfsup.models import temporal

CLIP = InputSpec(1, (16, 1, 8, 8), "clip")


def _encoder(spec: InputSpec = CLIP, encoder: str = "simper-featurizer", mean: float = 0.5, std: float = 0.25):
    return build_encoder(ModelConfig(encoder=encoder, width=4), spec, [mean] * spec.in_channels, [std] * spec.in_channels)


def _simclr(spec: InputSpec = CLIP, encoder: str = "simper-featurizer", **params):
    cls, p = resolve_method_params({"name": "simclr", "proj_hidden_dim": 16, "proj_dim": 8, **params})
    return cls(p, _encoder(spec, encoder), MethodContext(spec, 10, AugmentConfig(), {"fps": 8.0}))


def _views(method, n: int = 6):
    torch.manual_seed(0)
    return method.make_views(torch.rand(n, *method.ctx.spec.input_shape), torch.Generator().manual_seed(1))


def test_simclr_on_clips_contrasts_the_pooled_clip_embedding(monkeypatch, one_thread):
    method = _simclr()
    assert method.embedding == "clip" and method.params.embedding == "auto"  # the paper's SimCLR by default
    views = _views(method)
    seen = {}
    real = temporal.spectral_feature
    monkeypatch.setattr("selfsup.methods.simclr.nt_xent",
                        lambda a, b, t, gather_distributed: seen.setdefault("z", torch.cat([a, b])).sum() * 0 + 1.0)
    method.loss(views, torch.zeros(6, dtype=torch.long))
    clip = method.encoder.backbone.clip_embedding(method.encoder.normalize(torch.cat(views)))
    assert clip.shape == (12, 8)  # block2: 2 x width channels, pooled over time and space
    torch.testing.assert_close(seen["z"], method.projector(clip))
    monkeypatch.undo()
    loss = method.loss(views, torch.zeros(6, dtype=torch.long))["loss"]
    # the spectrum replaced by noise leaves the loss as it was: NT-Xent never sees it
    monkeypatch.setattr(temporal, "spectral_feature", lambda s, n: torch.rand(s.shape[0], n // 2 + 1))
    torch.testing.assert_close(method.loss(views, torch.zeros(6, dtype=torch.long))["loss"], loss)
    monkeypatch.setattr(temporal, "spectral_feature", real)
    loss.backward()
    stages = method.encoder.backbone.stages
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n in ("block1", "block2") for p in stages[n].parameters())
    assert all(p.grad is None for p in stages["head"].parameters())  # the one-channel head only feeds the spectrum
    # so it is frozen (DDP refuses trainable parameters without a gradient), the rest trains
    assert not any(p.requires_grad for p in stages["head"].parameters())
    assert all(p.requires_grad for n in ("block1", "block2") for p in stages[n].parameters())


def test_simclr_spectrum_embedding_is_the_periodic_readout_variant(one_thread):
    method = _simclr(embedding="spectrum")
    out = method.loss(_views(method), torch.zeros(6, dtype=torch.long))
    assert method.projector.net[0].in_features == method.encoder.feature_dim == 17
    out["loss"].backward()
    head = method.encoder.backbone.stages["head"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())  # the spectrum is trained


def test_simclr_clip_embedding_on_signals_and_the_online_probe_feature(one_thread):
    spec = InputSpec(1, (40, 1), "signal")
    method = _simclr(spec, "signal-conv1d")
    assert method.embedding == "clip" and method.encoder.backbone.clip_stage == "block3"
    out = method.loss(method.make_views(torch.randn(4, 40, 1), torch.Generator().manual_seed(0)),
                      torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(out["loss"])
    assert out["features"].shape == (4, method.encoder.feature_dim)  # the online probe still reads the spectrum


def test_simclr_embedding_errors_name_the_fix():
    with pytest.raises(ValueError, match="method.embedding='pooled'; valid: auto, clip, spectrum"):
        _simclr(embedding="pooled")
    image = InputSpec(1, (1, 8, 8), "image")
    with pytest.raises(ValueError, match="method.embedding=clip is for encoders of clips or signals"):
        _simclr(image, "convnet-small", embedding="clip")
    assert _simclr(image, "convnet-small").embedding == "auto"  # images: the encoder's features, as before


# -- the readouts -----------------------------------------------------------------------------

def _carrying_clips(n: int, seed: int) -> ArrayDataset:
    """Clips whose brightness oscillates at the target frequency f (1-3 cycles per 8 frames) about
    a level that grows with f: the spectrum carries f through the oscillation, the pooled clip
    embedding and the per-frame series through the level."""
    g = torch.Generator().manual_seed(seed)
    f = 1.0 + 2.0 * torch.rand(n, generator=g, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g, dtype=torch.float64)
    t = torch.arange(16, dtype=torch.float64)
    value = 0.2 + 0.1 * f[:, None] + 0.1 * torch.sin(2 * math.pi * f[:, None] * t / 8 + phase)
    clips = value[:, :, None, None, None].expand(n, 16, 1, 8, 8).float().contiguous()
    return ArrayDataset(clips, torch.zeros(n, dtype=torch.long), {"freq": f})


def _positive_encoder():
    """A random-init featurizer with non-negative weights and no input shift: every stage grows
    with brightness, so nothing is lost at a ReLU."""
    encoder = _encoder(mean=0.0, std=1.0).eval()
    with torch.no_grad():
        for m in encoder.modules():
            if isinstance(m, torch.nn.Conv3d):
                m.weight.abs_()
    return encoder


@pytest.fixture(scope="module")
def fixture_data():
    return _carrying_clips(160, 0), _carrying_clips(80, 1)


def _shuffled(dataset: ArrayDataset, seed: int = 2) -> ArrayDataset:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return ArrayDataset(dataset.inputs, dataset.labels, {"freq": dataset.targets["freq"][order]})


def test_readout_features_are_the_pooled_block2_and_the_series(fixture_data, one_thread):
    bank, _ = fixture_data
    encoder = _positive_encoder()
    r = readout_features(encoder, bank, batch_size=64)
    with torch.no_grad():
        stages = encoder.forward_stages(bank.load(torch.arange(len(bank))))
    torch.testing.assert_close(r["clip"], stages["block2"].mean(dim=(2, 3, 4)))
    torch.testing.assert_close(r["series"], stages["series"])


@pytest.mark.parametrize("readout", ["clip", "series"])
def test_clip_and_series_readouts_succeed_and_fail_on_shuffled_targets(fixture_data, readout, one_thread):
    bank, test = fixture_data
    encoder = _positive_encoder()
    right = readout_regression(encoder, bank, test, "freq", batch_size=64)
    wrong = readout_regression(encoder, _shuffled(bank), test, "freq", batch_size=64)
    assert set(right) == {f"regression.{r}.{m}" for r in ("clip", "series") for m in ("mae", "mape", "r2")}
    assert right[f"regression.{readout}.r2"] > 0.9
    assert wrong[f"regression.{readout}.r2"] < 0.2


def test_spectral_readout_succeeds_and_fails_on_shuffled_targets(fixture_data, one_thread):
    bank, test = fixture_data
    encoder = _positive_encoder()
    (train_x, _), (test_x, _) = extract_features(encoder, bank), extract_features(encoder, test)
    right, _ = regression_probe(train_x, bank.targets["freq"], test_x, test.targets["freq"])
    wrong, _ = regression_probe(train_x, _shuffled(bank).targets["freq"], test_x, test.targets["freq"])
    assert right["r2"] > 0.7 and wrong["r2"] < 0.2


def test_finetuning_for_the_target_succeeds_fails_on_shuffled_targets_and_leaves_the_encoder(fixture_data, one_thread):
    bank, test = fixture_data
    encoder = _positive_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    budget = {"epochs": 5, "lr": 3e-3, "batch_size": 8, "seed": 0}  # 100 steps: the head's BN and ReLU must adapt
    right = finetune_regression(encoder, bank, bank.targets["freq"], test, test.targets["freq"], **budget)
    wrong = finetune_regression(encoder, bank, _shuffled(bank).targets["freq"], test, test.targets["freq"], **budget)
    assert set(right) == {"mae", "mape", "r2"}
    assert right["r2"] > 0.4 and wrong["r2"] < 0.15
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())
    # a head a method froze (SimCLR on clips) is fine-tuned with the rest
    encoder.backbone.stages["head"].requires_grad_(False)
    assert finetune_regression(encoder, bank, bank.targets["freq"], test, test.targets["freq"], **budget) == right
    with pytest.raises(ValueError, match="samples and targets differ in length"):
        finetune_regression(encoder, bank, bank.targets["freq"][:5], test, test.targets["freq"])
