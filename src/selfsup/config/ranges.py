"""The value range of every numeric config key, checked once the config is composed, before
any data is read or anything is written: a value outside it is a :class:`ConfigError` naming the
key, the value and what it may be (issue 15). Keys whose range needs the data (labels, channels,
the dataset's size) are checked where the data is built."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from selfsup.config.loading import ConfigError
from selfsup.config.schema import LAYER_POOLINGS

Check = tuple[Callable[[Any], bool], str]  # (holds for a valid value, what a valid value is)


def at_least(low: float) -> Check:
    return (lambda v: v >= low), f">= {low:g}"


def positive() -> Check:
    return (lambda v: v > 0), "> 0"


def in_range(low: float, high: float, closed_low: bool = True, closed_high: bool = True) -> Check:
    def ok(v):
        return (v >= low if closed_low else v > low) and (v <= high if closed_high else v < high)

    return ok, f"in {'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"


def pair(item: Check) -> Check:
    """A ``[low, high]`` list: two values, each satisfying ``item``, low <= high."""
    ok, text = item
    return (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(ok, v)) and v[0] <= v[1],
            f"a pair [low, high] with low <= high, each {text}")


def each(item: Check) -> Check:
    ok, text = item
    return (lambda v: isinstance(v, (list, tuple)) and all(map(ok, v)), f"a list, each value {text}")


PROBABILITY = in_range(0, 1)
RANGES: dict[str, Check] = {  # a key set to None (where the schema allows it) means "the default"
    "data.limit": at_least(1),
    "data.val_fraction": in_range(0, 1, closed_high=False),
    "data.test_fraction": in_range(0, 1, closed_high=False),
    "data.labelled_fraction": in_range(0, 1, closed_low=False),
    "data.batch_size": (lambda v: v >= 2, ">= 2 (self-supervised losses compare the samples of a batch)"),
    "data.fps": positive(),
    "data.seconds": positive(),
    "data.freq_range": pair(positive()),
    "model.width": at_least(1),
    "model.patch_size": at_least(1),
    "model.vit_registers": at_least(0),
    "augment.num_views": at_least(1),
    "augment.crop_scale": pair(in_range(0, 1, closed_low=False)),
    "augment.crop_ratio": pair(positive()),
    "augment.hflip_prob": PROBABILITY,
    "augment.jitter_prob": PROBABILITY,
    "augment.jitter_strength": at_least(0),
    "augment.grayscale_prob": PROBABILITY,
    "augment.blur_prob": PROBABILITY,
    "augment.blur_sigma": pair(positive()),
    "augment.solarize_prob": PROBABILITY,
    "augment.view_blur_prob": each(PROBABILITY),
    "augment.view_solarize_prob": each(PROBABILITY),
    "augment.num_global_crops": at_least(1),
    "augment.global_crop_size": at_least(1),
    "augment.global_crop_scale": pair(in_range(0, 1, closed_low=False)),
    "augment.num_local_crops": at_least(0),
    "augment.local_crop_size": at_least(1),
    "augment.local_crop_scale": pair(in_range(0, 1, closed_low=False)),
    "optim.lr": positive(),
    "optim.momentum": in_range(0, 1, closed_high=False),
    "optim.weight_decay": at_least(0),
    "optim.weight_decay_end": at_least(0),
    "optim.betas": pair(in_range(0, 1, closed_high=False)),
    "optim.trust_coefficient": positive(),
    "optim.warmup_epochs": at_least(0),
    "optim.min_lr_ratio": PROBABILITY,
    "optim.probe_lr": positive(),
    "eval.limit": (lambda v: v >= 2, ">= 2 (the probes need a bank and a test set of at least 2 samples)"),
    "eval.knn_k": at_least(1),
    "eval.knn_temperature": positive(),
    "eval.batch_size": at_least(1),
    "eval.map_points": at_least(0),
    "eval.online_knn_samples": at_least(0),
    "eval.layer_pooling": (lambda v: isinstance(v, str) and bool(v) and set(v.split(",")) <= set(LAYER_POOLINGS),
                           f"a comma-separated list of {', '.join(LAYER_POOLINGS)}"),
    "eval.layer_features": at_least(1),
    "trainer.ckpt_every_n_steps": at_least(1),
}


def finite_numbers(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(not isinstance(v, (int, float)) or math.isfinite(v) for v in values)


def check_ranges(cfg: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ConfigError for the first key of :data:`RANGES` whose value is out of its range."""
    for key, (ok, text) in RANGES.items():
        section, name = key.split(".")
        value = (cfg.get(section) or {}).get(name)
        if value is None:
            continue
        try:
            valid = finite_numbers(value) and ok(value)
        except TypeError:  # a string where a number belongs (the schema's types are checked before)
            valid = False
        if not valid:
            raise ConfigError(f"config key {key!r}: {value!r} is out of range; it must be {text}")
