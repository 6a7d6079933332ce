"""The seed's evaluation protocol: MLP probe, fine-tuning, per-layer features, low-shot subsets."""
import math

import pytest
import torch

from selfsup.config.schema import DataConfig, ModelConfig
from selfsup.data import build_data
from selfsup.eval.finetune import finetune_accuracy
from selfsup.eval.layers import stage_features
from selfsup.eval.linear import linear_probe_accuracy
from selfsup.eval.lowshot import check_fractions, lowshot_indices, percent_key
from selfsup.eval.mlp import mlp_probe_accuracy
from selfsup.models import InputSpec, build_encoder


def rings(n: int, seed: int):
    """Two concentric rings in 2-d: no linear separation, an easy one for an MLP."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    angle = torch.rand(n, generator=g) * 2 * math.pi
    radius = 1.0 + 1.5 * y + 0.1 * torch.randn(n, generator=g)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1), y


def test_mlp_probe_solves_what_a_linear_probe_cannot():
    (a, ay), (b, by) = rings(800, 0), rings(400, 1)
    ay[:100] = -1  # unlabelled samples are left out
    assert linear_probe_accuracy(a, ay, b, by) < 0.7
    accuracy = mlp_probe_accuracy(a, ay, b, by, num_classes=2, hidden_dim=32, epochs=30, batch_size=64)
    assert accuracy > 0.95
    assert accuracy == mlp_probe_accuracy(a, ay, b, by, num_classes=2, hidden_dim=32, epochs=30, batch_size=64)


def test_lowshot_subsets_are_class_balanced_seeded_and_labelled_only():
    labels = torch.arange(1000) % 10
    labels[::7] = -1
    keep = lowshot_indices(labels, 0.1, seed=0)
    labelled = int((labels >= 0).sum())
    assert len(keep) == round(0.1 * labelled) and (labels[keep] >= 0).all()
    counts = torch.bincount(labels[keep], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert torch.equal(keep, lowshot_indices(labels, 0.1, seed=0))
    assert not torch.equal(keep, lowshot_indices(labels, 0.1, seed=1))
    assert len(lowshot_indices(labels, 0.001, seed=0)) == 10  # never below one per class
    with pytest.raises(ValueError, match="at least 2 classes"):
        lowshot_indices(torch.zeros(5, dtype=torch.long), 0.5, 0)


def test_percent_keys_and_fraction_checks():
    assert [percent_key(f) for f in (0.01, 0.1, 0.005, 1.0)] == ["1pct", "10pct", "0.5pct", "100pct"]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        check_fractions([0.1, 1.5])


@pytest.fixture(scope="module")
def digits():
    return build_data(DataConfig(name="digits", val_fraction=0.1), seed=0)


def small_encoder(splits, name="convnet-small"):
    torch.manual_seed(0)
    return build_encoder(ModelConfig(encoder=name, width=8, channels_last=False),
                         InputSpec(1, splits.input_shape), splits.mean, splits.std).eval()


def test_finetuning_learns_and_leaves_the_encoder_untouched(digits):
    encoder = small_encoder(digits)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    accuracy = finetune_accuracy(encoder, digits.train, digits.test, 10, epochs=4, lr=0.05, batch_size=64)
    assert accuracy > 0.85  # a random-init network trained for 4 epochs on 1,300 digits
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


@pytest.mark.parametrize("name", ["resnet-small", "convnet-small"])
def test_stage_features_are_the_pooled_stage_outputs(digits, name):
    encoder = small_encoder(digits, name)
    features, labels = stage_features(encoder, digits.test, batch_size=128, device="cpu")
    assert list(features) == ["block1", "block2", "block3", "block4"]
    assert [f.shape[1] for f in features.values()] == [8, 16, 32, 64]
    assert torch.equal(labels, digits.test.labels)
    x = digits.test.load(torch.arange(len(labels))).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(features["block4"], encoder(x), atol=1e-5, rtol=1e-5)
