import math

import pytest
import torch

from selfsup.losses.simper import SimPerLoss, label_weights, simper_loss, soft_info_nce
from dist_utils import assert_matches_one_process, ddp_grads, run_distributed
from periodic_reference import slow_label_weights, slow_simper_loss, slow_soft_cross_entropy

POWERS = {"l1": 1.0, "l2": 2.0, "sqrt": 0.5}


@pytest.mark.parametrize("distance", ["l1", "l2", "sqrt"])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
def test_label_weights_match_reference_and_rows_sum_to_one(distance, temperature):
    g = torch.Generator().manual_seed(7)
    a, b = 0.5 + 1.5 * torch.rand(2, 5, generator=g, dtype=torch.float64), 0.5 + 1.5 * torch.rand(2, 4, generator=g, dtype=torch.float64)
    w = label_weights(a, b, distance, temperature)
    assert w.shape == (2, 5, 4)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    for k in range(2):
        expected = slow_label_weights(a[k], b[k], POWERS[distance], temperature)
        torch.testing.assert_close(w[k], torch.tensor(expected, dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize("distance", ["l1", "l2", "sqrt"])
def test_label_weights_tend_to_identity_as_temperature_goes_to_zero(distance):
    speeds = torch.tensor([0.6, 0.9, 1.3, 1.9], dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    errors = [(label_weights(speeds, speeds, distance, t) - eye).abs().max().item() for t in (1.0, 0.1, 0.01, 1e-3)]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6


def test_soft_cross_entropy_hand_computed_3x3():
    s = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    speeds = torch.tensor([1.0, 1.1, 1.3], dtype=torch.float64)
    # W by hand (l1, label temperature 0.1): row i is softmax_j(-10 |s_i - s_j|)
    e1, e2, e3 = math.exp(-1), math.exp(-2), math.exp(-3)
    w = [[1 / (1 + e1 + e3), e1 / (1 + e1 + e3), e3 / (1 + e1 + e3)],
         [e1 / (e1 + 1 + e2), 1 / (e1 + 1 + e2), e2 / (e1 + 1 + e2)],
         [e3 / (e3 + e2 + 1), e2 / (e3 + e2 + 1), 1 / (e3 + e2 + 1)]]
    torch.testing.assert_close(label_weights(speeds, speeds), torch.tensor(w, dtype=torch.float64))
    # log softmax of S by hand: the rows' normalisers
    z0 = math.log(math.e + math.exp(0.5) + 1)
    z1 = math.log(math.exp(0.5) + math.e + math.exp(0.5))
    ce = [-(w[0][0] * (1 - z0) + w[0][1] * (0.5 - z0) + w[0][2] * (0 - z0)),
          -(w[1][0] * (0.5 - z1) + w[1][1] * (1 - z1) + w[1][2] * (0.5 - z1)),
          -(w[2][0] * (0 - z0) + w[2][1] * (0.5 - z0) + w[2][2] * (1 - z0))]
    expected = sum(ce) / 3
    assert soft_info_nce(s, label_weights(speeds, speeds)).item() == pytest.approx(expected, abs=1e-12)
    # with a feature temperature of 0.5 the logits double
    assert soft_info_nce(s, label_weights(speeds, speeds), 0.5).item() == pytest.approx(
        slow_soft_cross_entropy((2 * s).tolist(), w, 1.0), abs=1e-12)


@pytest.mark.parametrize("similarity", ["mxcorr", "npsd"])
@pytest.mark.parametrize("b,m,t", [(1, 1, 8), (2, 3, 16), (3, 4, 21)])
@pytest.mark.parametrize("distance,label_temperature,feature_temperature",
                         [("l1", 0.1, 1.0), ("l2", 0.5, 0.2), ("sqrt", 0.05, 2.0)])
def test_simper_loss_matches_slow_reference(similarity, b, m, t, distance, label_temperature, feature_temperature):
    g = torch.Generator().manual_seed(b * 100 + m * 10 + t)
    series = torch.randn(b, 2 * m, t, generator=g, dtype=torch.float64)
    speeds = torch.sort(0.5 + 1.5 * torch.rand(b, m, generator=g, dtype=torch.float64), dim=1).values.repeat(1, 2)
    loss = simper_loss(series, speeds, similarity, distance, label_temperature, feature_temperature)
    expected = slow_simper_loss(series, speeds, similarity, POWERS[distance], label_temperature, feature_temperature)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    module = SimPerLoss(similarity, distance, label_temperature, feature_temperature)
    assert module(series, speeds).item() == pytest.approx(expected, abs=1e-6)


def test_loss_prefers_series_whose_frequency_follows_the_speed():
    t, m = 60, 4
    speeds = torch.tensor([[0.6, 0.9, 1.4, 2.0] * 2], dtype=torch.float64)
    time = torch.arange(t, dtype=torch.float64)
    phases = torch.linspace(0, 2, 2 * m, dtype=torch.float64)
    following = torch.sin(2 * math.pi * 0.05 * speeds[0, :, None] * time + phases[:, None])[None]
    constant_freq = torch.sin(2 * math.pi * 0.05 * time + phases[:, None])[None]
    for similarity in ("mxcorr", "npsd"):
        assert simper_loss(following, speeds, similarity) < simper_loss(constant_freq, speeds, similarity)


def test_rejects_bad_inputs_with_clear_messages():
    with pytest.raises(ValueError, match=r"\[B, 2M, T\]"):
        simper_loss(torch.randn(4, 10), torch.rand(4))
    with pytest.raises(ValueError, match="even number"):
        simper_loss(torch.randn(2, 3, 10), torch.rand(2, 3))
    with pytest.raises(ValueError, match="label distance"):
        SimPerLoss(label_distance="cosine")
    with pytest.raises(ValueError, match="feature temperature"):
        SimPerLoss(feature_temperature=0.0)
    with pytest.raises(ValueError, match="label temperature"):
        label_weights(torch.rand(3), torch.rand(3), temperature=-1.0)


def _encoder(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # per-frame features -> one value per frame
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()


def _series(model, x):
    return model(x).squeeze(-1)  # [B, 2M, T, 3] -> [B, 2M, T]


def _two_process_step(rank, world, x, speeds):
    model = torch.nn.parallel.DistributedDataParallel(_encoder(0))
    n = x.shape[0] // world
    part = slice(rank * n, (rank + 1) * n)
    loss = simper_loss(_series(model, x[part]), speeds[part])
    loss.backward()
    return {"loss": loss.detach(), "grads": ddp_grads(model.module)}


def test_two_processes_equal_one_process_with_the_whole_batch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, 12, 3, generator=g, dtype=torch.float64)
    speeds = torch.sort(0.5 + torch.rand(4, 3, generator=g, dtype=torch.float64), dim=1).values.repeat(1, 2)
    model = _encoder(0)
    loss = simper_loss(_series(model, x), speeds)
    loss.backward()
    results = run_distributed(_two_process_step, x, speeds)
    assert_matches_one_process(results, loss, model, atol=1e-9)
