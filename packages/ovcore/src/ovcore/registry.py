"""Preset registry in timm's style (``@register`` on a function, ``names``, ``get``), one per method package."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PresetRegistry"]

F = TypeVar("F", bound=Callable)


class PresetRegistry(Generic[F]):
    """Preset entry points registered under their function ``__name__``.

    Args:
        kind: What the entries are, for messages (``"SED preset"``).
        allow_overwrite: A second registration of a name replaces the first with a warning (plugins overriding a
            built-in) instead of raising ``ValueError``.
        populate: Called before every lookup, e.g. to import the module whose decorators fill the registry, so the
            registry module stays importable on its own.
    """

    def __init__(self, kind: str, *, allow_overwrite: bool = False, populate: Callable[[], object] | None = None):
        self.kind = kind
        self.allow_overwrite = allow_overwrite
        self._populate = populate
        self._entries: dict[str, F] = {}

    def register(self, fn: F) -> F:
        """Decorator: register ``fn`` under its function name."""
        return self.add(fn.__name__, fn)

    def add(self, name: str, fn: F) -> F:
        """Register ``fn`` under ``name`` (for entries made from data, e.g. one per JSON config file)."""
        if name in self._entries:
            if not self.allow_overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            warnings.warn(f"overwriting {self.kind} {name!r}", stacklevel=2)
        self._entries[name] = fn
        return fn

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching an fnmatch ``pattern`` (e.g. ``"sed_convnext_*"``)."""
        self._ensure()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def get(self, name: str) -> F:
        """The entry registered as ``name``.

        Raises:
            ValueError: unknown name (the message lists the registered ones).
        """
        self._ensure()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; available presets: {self.names()}")
        return self._entries[name]

    def _ensure(self) -> None:
        if self._populate is not None:
            self._populate()
