"""SimPer (Yang, Liu, Wu, Borac, Katabi, Poh, McDuff. "SimPer: Simple Self-Supervised Learning
of Periodic Targets", ICLR 2023).

Each clip (or signal) of a batch gives 2M views: M sorted random speeds, each used twice, and
SimPer's periodicity-invariant augmentations per view (:mod:`selfsup.augment.temporal`). The
encoder maps every view to one value per frame; within each clip, the periodic similarity
(MXCorr or nPSD) of the two views' series is contrasted with soft targets from the speed gap
(:func:`selfsup.losses.simper.simper_loss`). There is no projection head and no contrast
across clips, as the released code.

Deviations from the released code, all options: the feature temperature (default 1, i.e.
none, as the code) is exposed; ``band`` None means every bin but DC up to Nyquist, which is
what the code's 0.25-15 Hz is at 30 fps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from selfsup.augment.temporal import InvariantAugment, PeriodicViews
from selfsup.losses.periodic import SIMILARITIES
from selfsup.losses.simper import LABEL_DISTANCES, simper_loss
from selfsup.methods.base import Method, MethodContext, Params, ViewRequirement
from selfsup.models import Encoder
from selfsup.models.temporal import SeriesEncoder, spectral_feature


@dataclass
class SimPerParams(Params):
    num_speeds: int = 10  # M: views per clip are 2M (tutorial 10)
    frames: Optional[int] = None  # T, frames per view; None = sequence length // max speed (tutorial 150 // 3)
    speed_range: List[float] = field(default_factory=lambda: [0.5, 2.0])  # src/; the tutorial uses [0.5, 3]
    similarity: str = "mxcorr"  # mxcorr | npsd
    label_distance: str = "l1"  # l1 | l2 | sqrt
    label_temperature: float = 0.1
    feature_temperature: float = 1.0  # the released code has none (1)
    band: Optional[List[float]] = None  # nPSD band in Hz (cycles per step without data fps); None = all but DC
    # periodicity-invariant augmentations, one draw per view (the released code's values)
    reverse_prob: float = 0.5
    crop_scale: List[float] = field(default_factory=lambda: [0.5, 1.0])
    crop_ratio: List[float] = field(default_factory=lambda: [0.75, 1.33])
    brightness: float = 0.3
    blur_prob: float = 0.2
    blur_sigma: List[float] = field(default_factory=lambda: [0.1, 2.0])
    hflip_prob: float = 0.5


class SimPer(Method):
    """SimPer on clips ([B, L, C, H, W]) or signals ([B, L, C]) with an encoder that emits one
    value per frame (``simper-featurizer``, ``signal-conv1d``)."""

    Params = SimPerParams
    view_requirement = ViewRequirement(("method.num_speeds",), 2, reason="the loss contrasts views of other speeds "
                                       "within a clip; with one speed it is 0 and nothing is learnt")

    def __init__(self, params: SimPerParams, encoder: Encoder, ctx: MethodContext):
        super().__init__(params, encoder, ctx)
        if not isinstance(encoder.backbone, SeriesEncoder):
            raise ValueError("simper needs an encoder that emits one value per frame: model.encoder=simper-featurizer "
                             "for clips or signal-conv1d for signals")
        if ctx.spec.kind not in ("clip", "signal"):
            raise ValueError(f"simper learns from clips or signals; the dataset holds {ctx.spec.kind}s "
                             "(try data.name=rotating-digits or ppg-heartpy)")
        if params.similarity not in SIMILARITIES:
            raise ValueError(f"method.similarity={params.similarity!r}; valid: {', '.join(SIMILARITIES)}")
        if params.label_distance not in LABEL_DISTANCES:
            raise ValueError(f"method.label_distance={params.label_distance!r}; valid: {', '.join(LABEL_DISTANCES)}")
        if len(params.speed_range) != 2 or not 0 < params.speed_range[0] <= params.speed_range[1]:
            raise ValueError(f"method.speed_range must be [low, high] with 0 < low <= high, got {params.speed_range}")
        self.fps = float(ctx.info.get("fps") or 1.0)
        invariant = InvariantAugment(params.reverse_prob, tuple(params.crop_scale), tuple(params.crop_ratio),
                                     params.brightness, params.blur_prob, tuple(params.blur_sigma), params.hflip_prob)
        self.views = PeriodicViews(params.num_speeds, params.frames, tuple(params.speed_range), invariant)
        frames = self.views.view_frames(ctx.spec.input_shape[0])
        if frames > ctx.spec.input_shape[0]:
            raise ValueError(f"method.frames={frames} exceeds the sequence length {ctx.spec.input_shape[0]}")
        self.band = tuple(params.band) if params.band else (0.5 * self.fps / frames, self.fps / 2)

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.views(x, generator)

    def loss(self, views: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        clips, speeds = views  # [B, 2M, T, ...], [B, 2M]
        b, v, t = clips.shape[:3]
        series = self.encoder.forward_stages(clips.flatten(0, 1))["series"].view(b, v, t)
        p = self.params
        loss = simper_loss(series, speeds, p.similarity, p.label_distance, p.label_temperature,
                           p.feature_temperature, self.fps, self.band)
        first = series[:, 0]  # the slowest view of each clip
        return {"loss": loss, "features": spectral_feature(first, self.encoder.backbone.spectrum_length),
                "embeddings": first}
