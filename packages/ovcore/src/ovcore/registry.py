"""Preset registry in timm's style (``@register`` on a function, ``names``, ``get``), one per method package.

Every method package fills its registry the same way (root README, "Adding a method"): one entry per JSON file of
its ``model_configs/`` folder (:meth:`PresetRegistry.add_configs`), plus presets written in Python; its
``get_preset_config`` reads an entry through :meth:`PresetRegistry.config`, which checks the entry's return type.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

__all__ = ["PresetRegistry"]

F = TypeVar("F", bound=Callable)
C = TypeVar("C")


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

    def add_configs(
        self, names: Iterable[str], load: Callable[[str], Any], describe: Callable[[str], str] | None = None
    ) -> None:
        """Register one entry per config name (each JSON file of a ``model_configs/`` folder): adding a preset is
        adding a file.

        Args:
            names: The config names (file stems).
            load: ``load(name)`` reads config ``name``; the entry only calls it, so configs stay data.
            describe: ``describe(name)`` is the entry's docstring, the preset's description; default the
                ``description`` field of ``load(name)``.
        """
        for name in names:
            doc = describe(name) if describe is not None else getattr(load(name), "description", "")
            self.add(name, _config_entry(name, load, doc))

    def config(self, name: str, config_type: type[C], *, builder: str, article: str = "a") -> C:
        """Call the entry registered as ``name`` and check that it returned a ``config_type``.

        Args:
            name: A registered name.
            config_type: The method's config class.
            builder: The function that builds the model from the config, for the message (``"create_sed"``).
            article: ``"a"`` or ``"an"`` before the class name in the message (``"an SEDConfig"``).

        Raises:
            ValueError: unknown name (the message lists the registered ones), or an entry that returned another type.
        """
        cfg = self.get(name)()
        if not isinstance(cfg, config_type):
            raise ValueError(
                f"{self.kind} {name!r} returned {type(cfg).__name__}: a preset function returns {article} "
                f"{config_type.__name__} ({builder} builds the model from it)"
            )
        return cfg

    def description(self, name: str) -> str:
        """The first line of the docstring of the entry registered as ``name`` (empty when it has none).

        Raises:
            ValueError: unknown name.
        """
        return (self.get(name).__doc__ or "").strip().split("\n")[0]

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


def _config_entry(name: str, load: Callable[[str], Any], doc: str) -> Callable[[], Any]:
    """The registry entry of config file ``name``: a function of no arguments named after it."""

    def entry() -> Any:
        return load(name)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = doc
    return entry
