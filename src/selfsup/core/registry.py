"""One registry per kind (datasets, encoders, methods, evaluations): an explicit table.

Each kind has one file that lists every built-in entry by name and import path
(``"simclr": "selfsup.methods.simclr:SimCLR"``); an entry is imported the first time it is
asked for, so listing names costs nothing and importing one part of the library never loads
another as a side effect. Users add their own entries with ``REG.register(name)(item)``.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterator, Mapping, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> items. ``table`` maps each built-in name to ``"module:attribute"``;
    ``get(name)`` imports it on first use or raises a ``KeyError`` that lists the closest names."""

    def __init__(self, kind: str, table: Mapping[str, str] | None = None):
        self.kind = kind
        self._paths: dict[str, str] = dict(table or {})
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Add a user's own item: ``REG.register("mine")(item)`` (also usable as a decorator)."""

        def add(item: T) -> T:
            if name in self._items or name in self._paths:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            if name not in self._paths:
                raise KeyError(unknown_name_message(self.kind, name, self.names()))
            module, _, attribute = self._paths[name].partition(":")
            self._items[name] = getattr(importlib.import_module(module), attribute)
        return self._items[name]

    def names(self) -> list[str]:
        return sorted({*self._paths, *self._items})

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """'unknown <kind> X; did you mean: A, B? valid: ...' with the closest names first."""
    close = difflib.get_close_matches(str(name), valid, n=3, cutoff=0.5)  # a config may give a number
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid {kind} names: {', '.join(sorted(valid))}"
