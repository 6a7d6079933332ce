"""The config of a command, composed and validated once: recipe + ``key=value`` overrides for a
new run, the run's own config.yaml (+ the overrides a resume may change) for an existing one."""
from __future__ import annotations

import dataclasses
import inspect
import logging
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import lightning as L
from omegaconf import DictConfig, OmegaConf

from selfsup.config.loading import (
    DEFAULT_RECIPE,
    ConfigError,
    build_config,
    closest_keys_message,
    parse_overrides,
    read_yaml,
    recipe_values,
)
from selfsup.config.ranges import check_ranges
from selfsup.engine.precision import resolve_precision
from selfsup.methods import METHODS, method_config_with_defaults

if TYPE_CHECKING:
    from selfsup.engine.run import Run

log = logging.getLogger(__name__)

TRAINER_DEFAULTS = {
    "max_epochs": 10,
    "max_steps": -1,
    "accelerator": "auto",
    "devices": 1,
    "strategy": "auto",
    "precision": "auto",  # resolved at compose time: selfsup.engine.precision.auto_precision
    "log_every_n_steps": 50,
    "enable_progress_bar": True,
    "ckpt_every_n_steps": None,  # selfsup's own: also checkpoint every n optimiser steps
    "min_train_steps": None,  # selfsup's own: at least this many steps when max_epochs gives fewer (see below)
}
SELFSUP_TRAINER_KEYS = {"ckpt_every_n_steps", "min_train_steps"}
# A budget that fits the data: a recipe's max_epochs was sized for its own dataset; on the user's own
# data (these datasets) a new run trains at least USER_DATA_MIN_STEPS optimiser steps unless the
# command line gives its length (trainer.max_epochs / max_steps / min_train_steps). It only ever
# lengthens a short run (a large dataset trains the recipe's epochs); trainer.max_time still ends
# training first when it comes first. Chosen on the runs' validation splits (bench/own_data_budget.py,
# bench/reports/own-data/budget.md): on 2,000 Fashion-MNIST PNGs read through image-folder, val kNN
# 0.700 / 0.680 / 0.710 at 700 (the 100-epoch cap) / 1,000 / 2,000 steps; on sklearn's digits 0.875 /
# 0.972 / 0.986 at 500 / 1,000 / 2,000: 2,000 steps, the best on both.
USER_DATA = {"image-folder", "signals", "video-folder"}
USER_DATA_MIN_STEPS = 2000
LENGTH_KEYS = {"trainer.max_epochs", "trainer.max_steps", "trainer.min_train_steps"}
MANAGED_TRAINER_KEYS = {"callbacks", "logger", "plugins", "default_root_dir", "enable_checkpointing",
                        "use_distributed_sampler", "self"}
# what `selfsup train --resume RUN key=value` may change: the length, where and how it runs, what
# it logs, the evaluation, and the learning rate (to get past a diverged step); a key ending in
# "." covers its whole section. Everything else (model, method, data, augment, seed) is what the
# checkpoint was trained with.
RESUMABLE_KEYS = ("trainer.max_epochs", "trainer.max_steps", "trainer.max_time", "trainer.devices",
                  "trainer.num_nodes", "trainer.accelerator", "trainer.strategy", "trainer.precision",
                  "trainer.log_every_n_steps", "trainer.enable_progress_bar", "trainer.ckpt_every_n_steps",
                  "eval.", "run.loggers", "data.num_workers", "optim.lr", "optim.probe_lr")


def valid_trainer_keys() -> set[str]:
    return (set(inspect.signature(L.Trainer.__init__).parameters) - MANAGED_TRAINER_KEYS) | SELFSUP_TRAINER_KEYS


def matches(value: Any, annotation: Any) -> bool:
    """Whether a config value (int, float, bool, str, None, list, dict) fits a type annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin is typing.Union:
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple, typing.Sequence):
        return isinstance(value, (list, tuple)) and all(matches(v, args[0]) for v in value) if args else isinstance(
            value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(annotation, type) and isinstance(value, annotation)


def check_trainer_values(trainer: Mapping[str, Any]) -> None:
    """Every ``trainer.*`` value against the annotation of Lightning's ``Trainer`` argument."""
    hints = typing.get_type_hints(L.Trainer.__init__)
    for key, value in trainer.items():
        if key in hints and not matches(value, hints[key]):
            raise ConfigError(f"config key 'trainer.{key}': {value!r} is not a valid value; Lightning's Trainer "
                              f"takes {readable(hints[key])}")
    if "ckpt_every_n_steps" in trainer and not matches(trainer["ckpt_every_n_steps"], typing.Optional[int]):
        raise ConfigError(f"config key 'trainer.ckpt_every_n_steps': {trainer['ckpt_every_n_steps']!r} is not an "
                          "integer number of steps")


def readable(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    for noise in ("lightning.pytorch.accelerators.accelerator.", "lightning.pytorch.strategies.strategy.",
                  "lightning.pytorch.profilers.profiler.", "datetime."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def resolve_config(cfg: DictConfig, new_run: bool = False) -> DictConfig:
    """The fully resolved config: method and trainer sections validated and defaults filled.
    ``new_run``: the config of a run about to start, where more views than the method uses are
    refused (for an existing run folder's config, a warning)."""
    valid = valid_trainer_keys()
    for key in cfg.trainer:
        if key not in valid:
            raise ConfigError(closest_keys_message(f"trainer.{key}", [f"trainer.{k}" for k in valid]))
    trainer = {**TRAINER_DEFAULTS, **OmegaConf.to_container(cfg.trainer)}
    trainer["precision"] = resolve_precision(trainer["precision"], trainer["accelerator"])
    check_trainer_values(trainer)
    check_ranges(OmegaConf.to_container(cfg))
    out = cfg.copy()
    out.trainer = trainer
    out.method = method_config_with_defaults(OmegaConf.to_container(cfg.method))
    check_views(out, new_run)
    return out


def check_views(cfg: DictConfig, new_run: bool) -> None:
    """The view counts against the method's :class:`selfsup.methods.base.ViewRequirement`: too
    few is a ConfigError; too many one for a new run, a warning for an existing one."""
    need = METHODS.get(cfg.method.name).view_requirement
    problem = need and need.problem(cfg.method.name, {k: OmegaConf.select(cfg, k) for k in need.keys})
    if not problem:
        return
    too_few, what, fix = problem
    if too_few or new_run:
        raise ConfigError(f"{what}: {fix}")
    log.warning("%s; a new run should %s", what, fix)


def method_fields(name: str) -> set[str]:
    try:
        cls = METHODS.get(name)
    except KeyError as err:
        raise ConfigError(err.args[0].replace("unknown method", "unknown method.name")) from None
    return {f.name for f in dataclasses.fields(cls.Params)}


def switch_method(recipe: dict, given: Mapping[str, Any]) -> dict:
    """A recipe whose ``method.name`` the overrides change starts the new method from its own
    defaults: the recipe's method keys the new method lacks are dropped (one log line names
    them), the ones it shares are kept."""
    name = (given.get("method") or {}).get("name")
    method = dict(recipe.get("method") or {})
    if not name or name == method.get("name"):
        return recipe
    valid = method_fields(name)
    dropped = sorted(k for k in method if k != "name" and k not in valid)
    if dropped:
        log.info("method.name=%s: recipe keys it does not have are dropped: %s", name,
                 ", ".join(f"method.{k}" for k in dropped))
    return {**recipe, "method": {k: v for k, v in method.items() if k in valid}}


def compose_config(recipe: str | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """The resolved config of ``selfsup train [RECIPE] [key=value ...]``."""
    given = parse_overrides(overrides)
    values = switch_method(recipe_values(recipe or DEFAULT_RECIPE), given)
    cfg = resolve_config(build_config(values, given), new_run=True)
    if cfg.data.name in USER_DATA and not LENGTH_KEYS & set(flat_keys(given)) and cfg.trainer.min_train_steps is None:
        cfg.trainer.min_train_steps = USER_DATA_MIN_STEPS
    return cfg


def flat_keys(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """{"trainer": {"max_epochs": 2}} -> ["trainer.max_epochs"] (lists are values)."""
    out = []
    for key, value in values.items():
        out += flat_keys(value, f"{prefix}{key}.") if isinstance(value, Mapping) else [f"{prefix}{key}"]
    return out


def check_resume_overrides(run: "Run", overrides: Sequence[str]) -> None:
    """Refuse, before anything is written, an override that a resume cannot honour."""
    for key in flat_keys(parse_overrides(overrides)):
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS):
            old = OmegaConf.select(run.cfg, key, default="(unset)")
            raise ConfigError(
                f"config key {key!r} cannot change on --resume: the checkpoint in {run.dir} was trained with "
                f"{key}={old}. Start a new run for that (another run.dir); a resume may change "
                + ", ".join(k + ("*" if k.endswith(".") else "") for k in RESUMABLE_KEYS))


def resume_config(run: "Run", overrides: Sequence[str]) -> DictConfig:
    """The run's config with the (already checked) resume overrides applied and validated."""
    return resolve_config(build_config(read_yaml(run.config_path), parse_overrides(overrides)))


def run_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    """A run folder's config.yaml, with ``overrides`` (evaluation settings), resolved."""
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{path} not found: is {run_dir} a run folder made by `selfsup train`?")
    return resolve_config(build_config(read_yaml(path), parse_overrides(overrides)))


TRAINER_COMMENTS = {
    "max_epochs": "passes over the pre-training split",
    "max_steps": "optimiser steps in all (-1: from max_epochs); the lower of the two ends training",
    "accelerator": "cpu | gpu | auto",
    "devices": "processes per node (GPUs); with strategy=ddp they share the batch work",
    "strategy": "auto | ddp | ... (Lightning strategies)",
    "precision": "auto (bf16-mixed where the device has native bf16, else 32-true) | 32-true | bf16-mixed | 16-mixed",
    "max_time": "DD:HH:MM:SS wall-time budget: steps planned from the measured step time (selfsup.engine.budget)",
    "log_every_n_steps": "metrics.csv row every n steps (more often in short runs)",
    "enable_progress_bar": "Lightning's progress bar, on stderr",
    "ckpt_every_n_steps": "selfsup: also write checkpoints/last.ckpt every n optimiser steps",
    "min_train_steps": "selfsup: at least this many optimiser steps when max_epochs gives fewer (small data; "
                       f"default {USER_DATA_MIN_STEPS} on {', '.join(sorted(USER_DATA))} unless the length is given)",
}


def describe_config(cfg: DictConfig) -> str:
    """The resolved config as YAML, every key with its one-line comment (the dataclass field's;
    the method's own Params for ``method.*``; Lightning's argument for ``trainer.*``)."""
    import yaml

    from selfsup.config.comments import field_comments
    from selfsup.config.schema import Config

    sections = {f.name: f for f in dataclasses.fields(Config)}
    top = field_comments(Config)
    method_cls = METHODS.get(cfg.method.name)
    lines = []
    values = OmegaConf.to_container(cfg, resolve=True)
    for name, value in values.items():
        if not isinstance(value, dict):
            lines.append(yaml_line(name, value, top.get(name, ""), 0, yaml))
            continue
        lines.append(f"{name}:")
        if name == "method":
            comments = {"name": method_paper(method_cls), **field_comments(method_cls.Params)}
        elif name == "trainer":
            comments = TRAINER_COMMENTS
        else:
            comments = field_comments(type(sections[name].default_factory()))
        for key, sub in value.items():
            lines.append(yaml_line(key, sub, comments.get(key, "Lightning Trainer argument" if name == "trainer" else ""), 2, yaml))
    return "\n".join(lines) + "\n"


def method_paper(cls: type) -> str:
    """The first paragraph of the method module's docstring (its paper), on one line."""
    import sys

    doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def yaml_line(key: str, value, comment: str, indent: int, yaml) -> str:
    text = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000).strip()[1:-1]
    return " " * indent + text + (f"  # {comment}" if comment else "")
