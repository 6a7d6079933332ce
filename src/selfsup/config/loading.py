"""Load recipes (YAML) and ``key=value`` overrides into a validated, typed config."""
from __future__ import annotations

import dataclasses
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from selfsup.config.schema import Config

DEFAULT_RECIPE = "simclr-fashion-mnist"
OPEN_SECTIONS = ("method", "trainer")  # validated by the method and the engine


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names it and the fix."""


def recipe_dir() -> Path:
    return Path(str(resources.files("selfsup.config") / "recipes"))


def list_recipes() -> dict[str, str]:
    """Recipe name -> one-line description (the YAML file's first comment line)."""
    out = {}
    for path in sorted(recipe_dir().glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        out[path.stem] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return out


def closest_keys_message(key: str, valid: Iterable[str]) -> str:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown config key {key!r}.{hint} Valid keys here: {', '.join(valid)}"


def check_keys(values: Mapping[str, Any], schema: type, prefix: str = "") -> None:
    """Raise ConfigError for any key of ``values`` that the dataclass ``schema`` does not have."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(closest_keys_message(full, [f"{prefix}{k}" for k in fields]))
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        sub_type = type(sub()) if sub is not None else None
        if sub_type is not None and dataclasses.is_dataclass(sub_type) and full not in OPEN_SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full!r} is a section; set its keys, e.g. {full}.<key>=...")
            check_keys(value, sub_type, prefix=f"{full}.")


def parse_overrides(overrides: Iterable[str]) -> dict:
    items = list(overrides)
    for item in items:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. data.limit=1000)")
        try:
            OmegaConf.to_container(OmegaConf.from_dotlist([item]))
        except (OmegaConfBaseException, yaml.YAMLError) as err:  # an unclosed [ or ${, a bad interpolation
            reason = str(err).splitlines()[0]
            raise ConfigError(f"override {item!r} cannot be parsed ({reason}); quote a value that holds [, {{ or "
                              f"${{ (key='...') or fix its brackets") from None
    return OmegaConf.to_container(OmegaConf.from_dotlist(items))


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return data


def recipe_values(recipe: str) -> dict:
    path = Path(recipe)
    if not path.suffix == ".yaml":
        path = recipe_dir() / f"{recipe}.yaml"
        if not path.exists():
            names = list(list_recipes())
            close = difflib.get_close_matches(recipe, names, n=3, cutoff=0.4)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown recipe {recipe!r}.{hint} `selfsup recipes` lists: {', '.join(names)}")
    elif not path.exists():
        raise ConfigError(f"recipe file {path} does not exist")
    values = read_yaml(path)
    values.setdefault("recipe", path.stem)
    return values


def build_config(*layers: Mapping[str, Any]) -> DictConfig:
    """Merge layers of plain values onto the typed defaults, validating keys and types."""
    cfg = OmegaConf.structured(Config)
    for layer in layers:
        check_keys(layer, Config)
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"config key {key!r}: {err.msg if hasattr(err, 'msg') else err}") from None
    return cfg
