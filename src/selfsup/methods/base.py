"""The method interface: its modules, its hyper-parameters, and a batch of views -> loss.

A method is a small ``nn.Module``. It declares ``Params`` (a dataclass of its
hyper-parameters with the paper's defaults; these are the ``method.*`` config keys), builds
its heads around the encoder it is given, turns a raw batch into views (``make_views``) and
views into a loss (``loss``). Everything shared (optimiser, schedule, online probe, logging,
checkpoints, distribution) lives once in ``selfsup.engine``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from selfsup.config.loading import ConfigError, closest_keys_message
from selfsup.config.schema import AugmentConfig
from selfsup.methods.registry import METHODS
from selfsup.models.encoders import Encoder, InputSpec


@dataclass
class MethodContext:
    """What a method may know about its surroundings when it builds its modules."""

    spec: InputSpec
    num_classes: int
    augment: AugmentConfig
    info: dict = dataclasses.field(default_factory=dict)  # the dataset's extra facts (fps, ...)


@dataclass
class ViewColumn:
    """One column of ``selfsup show-views``: a title, pictures [N, C, h, w] (one per row; any
    value range) and optionally a caption per row."""

    title: str
    images: torch.Tensor
    captions: list[str] | None = None


@dataclass
class Params:
    """Hyper-parameters every method has (subclasses add their own)."""


@dataclass(frozen=True)
class ViewRequirement:
    """How many views a method's loss takes, in config keys: the sum of ``keys`` (integer keys of
    the resolved config, e.g. ``augment.num_views``) must be at least ``minimum`` and, where
    ``maximum`` is set, at most ``maximum`` (views past it are made and never used). ``reason``
    is why, for the message. Checked when a config is resolved, before anything is written
    (:func:`selfsup.engine.configure.resolve_config`)."""

    keys: tuple[str, ...]
    minimum: int
    maximum: int | None = None
    reason: str = ""

    def problem(self, method: str, values: Mapping[str, int]) -> tuple[bool, str, str] | None:
        """(too few, what is wrong, the fix) for ``values`` of ``keys`` outside the requirement,
        else None. The fix moves the last key by the difference."""
        count = sum(values[k] for k in self.keys)
        if count < self.minimum:
            target, what = self.minimum, f"too few for method.name={method}; it needs >= {self.minimum}"
        elif self.maximum is not None and count > self.maximum:
            target, what = self.maximum, f"more than method.name={method} uses; it takes <= {self.maximum}"
        else:
            return None
        several = len(self.keys) > 1
        given = " + ".join(str(values[k]) for k in self.keys) + (f" = {count}" if several else "")
        keys = f"config key{'s' if several else ''} " + " + ".join(map(repr, self.keys))
        last = self.keys[-1]
        return count < self.minimum, f"{keys}: {given} is {what} ({self.reason})", \
            f"set {last}={values[last] + target - count}"


class Method(nn.Module):
    """Base of every method. Subclasses set ``Params`` and implement ``make_views`` and ``loss``.

    ``loss(views, labels)`` returns a dict with at least ``loss`` (scalar to minimise) and
    ``features`` ([N, feature_dim] encoder features of the first view, for the online probe
    and collapse diagnostics); other scalar entries are logged as ``train/<name>``.
    ``embeddings`` ([N, d], optional) is the space the loss acts on, for diagnostics."""

    Params: ClassVar[type] = Params
    # where training stands in epochs (epoch + the fraction of it done), set by the engine before
    # every training step: epoch-based schedules (DINO's teacher temperature, frozen layers) read it
    epoch: float = 0.0
    # names in selfsup.eval.registry that `selfsup eval` runs for this method beside the standard ones
    evaluations: ClassVar[tuple[str, ...]] = ()
    # whether the BatchNorm statistics of the heads carry the training signal, so that under DDP they
    # should be those of the global batch (model.sync_batchnorm's default)
    global_batchnorm: ClassVar[bool] = False
    # how many views the loss takes, checked before anything runs (None: the method makes its own)
    view_requirement: ClassVar[ViewRequirement | None] = None

    def __init__(self, params: Params, encoder: Encoder, ctx: MethodContext):
        super().__init__()
        self.params = params
        self.encoder = encoder
        self.ctx = ctx

    def make_views(self, x: torch.Tensor, generator: torch.Generator) -> Any:
        raise NotImplementedError

    def loss(self, views: Any, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def view_columns(self, x: torch.Tensor, views: Any) -> list[ViewColumn]:
        """``make_views(x)`` as columns of pictures for ``selfsup show-views``, one row per
        image of ``x``. By default every view is a batch of images with the samples and channels
        of ``x``, of any size (multi-crop: small local crops; their size is in the title)."""
        if not isinstance(views, (list, tuple)) or not all(
                isinstance(v, torch.Tensor) and v.dim() == 4 and v.shape[:2] == x.shape[:2] for v in views):
            raise ValueError(f"show-views cannot draw the views of {type(self).__name__}: "
                             "they are not images of the input's samples and channels")
        return [ViewColumn(f"view {i + 1}" + ("" if v.shape[2:] == x.shape[2:] else f" ({v.shape[2]}x{v.shape[3]})"), v)
                for i, v in enumerate(views)]

    def before_optimizer_step(self) -> None:
        """Called after the backward pass, before gradient clipping and the optimiser step: a
        method that keeps a layer frozen for its first epochs drops that layer's gradients here
        (``p.grad = None``: the optimiser then skips it, weight decay included)."""

    def after_optimizer_step(self, progress: float) -> None:
        """Called after every optimiser step; ``progress`` in [0, 1] is the fraction of training
        done (momentum encoders update here)."""


def resolve_method_params(method_cfg: Mapping[str, Any]) -> tuple[type[Method], Params]:
    """The method class named by ``method.name`` and its params, every key validated."""
    values = dict(method_cfg)
    name = values.pop("name", None)
    if name is None:
        raise ConfigError(f"method.name is missing; valid method names: {', '.join(METHODS.names())}")
    try:
        cls = METHODS.get(name)
    except KeyError as err:
        raise ConfigError(err.args[0].replace("unknown method", "unknown method.name")) from None
    valid = {f.name for f in dataclasses.fields(cls.Params)}
    for key in values:
        if key not in valid:
            raise ConfigError(closest_keys_message(f"method.{key}", [f"method.{k}" for k in valid] + ["method.name"]))
    try:
        typed = OmegaConf.merge(OmegaConf.structured(cls.Params), values)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config key 'method.{getattr(err, 'full_key', '?')}': {getattr(err, 'msg', err)}") from None
    return cls, OmegaConf.to_object(typed)


def method_config_with_defaults(method_cfg: Mapping[str, Any]) -> dict:
    """``method.*`` with every parameter filled in (the fully resolved config.yaml)."""
    cls, params = resolve_method_params(method_cfg)
    return {"name": method_cfg["name"], **dataclasses.asdict(params)}
