"""SimPer's generalized InfoNCE over continuous targets (Yang et al., "SimPer: Simple
Self-Supervised Learning of Periodic Targets", ICLR 2023, section 3.3, eq. 3)."""
from __future__ import annotations

import torch
from torch import nn

from selfsup.losses.periodic import SIMILARITIES, periodic_similarity

LABEL_DISTANCES = {"l1": 1.0, "l2": 2.0, "sqrt": 0.5}


def label_weights(
    labels_1: torch.Tensor, labels_2: torch.Tensor, distance: str = "l1", temperature: float = 0.1
) -> torch.Tensor:
    """Soft targets from continuous labels (speeds): for each row i a distribution over j,

        W_ij = softmax_j( -|l1_i - l2_j|^p / temperature ),  p = 1 (l1), 2 (l2) or 1/2 (sqrt).

    Rows sum to 1; as temperature -> 0 each row puts all its weight on the nearest label
    (W -> I for two copies of the same distinct labels). labels_1: [..., M], labels_2: [..., N]
    -> W: [..., M, N]. The paper's label temperature is 0.1.
    """
    if distance not in LABEL_DISTANCES:
        raise ValueError(f"unknown label distance {distance!r}; valid: {', '.join(LABEL_DISTANCES)}")
    if temperature <= 0:
        raise ValueError(f"label temperature must be positive, got {temperature}")
    if labels_1.shape[:-1] != labels_2.shape[:-1]:
        raise ValueError(f"labels must share their leading shape, got {tuple(labels_1.shape)} and {tuple(labels_2.shape)}")
    gap = (labels_1.unsqueeze(-1) - labels_2.unsqueeze(-2)).abs().pow(LABEL_DISTANCES[distance])
    return torch.softmax(-gap / temperature, dim=-1)


def soft_info_nce(similarity: torch.Tensor, weights: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft cross-entropy between target rows and a softmax over similarities, averaged over rows:

        loss = mean_{rows i} sum_j -W_ij log( exp(S_ij / tau) / sum_k exp(S_ik / tau) )

    similarity, weights: [..., M, N] -> scalar. ``temperature`` is the feature temperature
    (SimPer's released code has none, i.e. 1)."""
    if similarity.shape != weights.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and weights {tuple(weights.shape)} differ in shape")
    if temperature <= 0:
        raise ValueError(f"feature temperature must be positive, got {temperature}")
    log_prob = torch.log_softmax(similarity / temperature, dim=-1)
    return -(weights * log_prob).sum(-1).mean()


def simper_loss(
    series: torch.Tensor,
    speeds: torch.Tensor,
    similarity: str = "mxcorr",
    label_distance: str = "l1",
    label_temperature: float = 0.1,
    feature_temperature: float = 1.0,
    fps: float = 30.0,
    band: tuple[float, float] = (0.25, 15.0),
) -> torch.Tensor:
    """SimPer's loss for a batch of B clips, each seen as 2M views (two per speed).

    series: [B, 2M, T], the encoder's one value per frame of every view, views m and m + M of
    a clip at the same speed; speeds: [B, 2M], the views' speed factors (the continuous
    "labels"). Per clip b, with Z_a = series[b, :M] and Z_b = series[b, M:],

        S = sim(Z_a, Z_b)  (MXCorr or nPSD, [M, M]),  W = label_weights(s[b, :M], s[b, M:])
        l_b = (1/M) sum_i sum_j -W_ij log softmax_j(S_ij / feature_temperature)

    and the loss is mean_b l_b. As the paper's code, negatives come only from the other-speed
    views of the same clip: there is no contrast across clips, so the loss of a batch is the
    mean of independent per-clip losses and needs no gathering across processes (DDP's
    gradient average over equal shards equals one process with the whole batch).

    fps and band (Hz) are used by nPSD only.
    """
    if series.dim() != 3 or speeds.shape != series.shape[:2]:
        raise ValueError(f"series must be [B, 2M, T] with speeds [B, 2M], got {tuple(series.shape)} and {tuple(speeds.shape)}")
    if series.shape[1] % 2 or series.shape[1] < 2:
        raise ValueError(f"need an even number 2M >= 2 of views per clip, got {series.shape[1]}")
    m = series.shape[1] // 2
    sim = periodic_similarity(series[:, :m], series[:, m:], similarity, fps, band[0], band[1])
    weights = label_weights(speeds[:, :m].to(sim.dtype), speeds[:, m:].to(sim.dtype), label_distance, label_temperature)
    return soft_info_nce(sim, weights, feature_temperature)


class SimPerLoss(nn.Module):
    """Module form of :func:`simper_loss` with the paper's defaults (MXCorr, l1, label
    temperature 0.1, no feature temperature): ``SimPerLoss()(series, speeds)``."""

    def __init__(
        self, similarity: str = "mxcorr", label_distance: str = "l1", label_temperature: float = 0.1,
        feature_temperature: float = 1.0, fps: float = 30.0, band: tuple[float, float] = (0.25, 15.0),
    ):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown periodic similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
        if label_distance not in LABEL_DISTANCES:
            raise ValueError(f"unknown label distance {label_distance!r}; valid: {', '.join(LABEL_DISTANCES)}")
        for name, value in (("label", label_temperature), ("feature", feature_temperature)):
            if value <= 0:
                raise ValueError(f"{name} temperature must be positive, got {value}")
        self.similarity, self.label_distance = similarity, label_distance
        self.label_temperature, self.feature_temperature = label_temperature, feature_temperature
        self.fps, self.band = fps, tuple(band)

    def forward(self, series: torch.Tensor, speeds: torch.Tensor) -> torch.Tensor:
        return simper_loss(series, speeds, self.similarity, self.label_distance, self.label_temperature,
                           self.feature_temperature, self.fps, self.band)
