"""Configs as data: one JSON file per preset, where a file may name a ``base`` and override some of its fields.

This is the overlay rule of open_clip's JSON model configs and mmseg's ``_base_``: ``sed_convnext_b_768_fast.json``
holds ``{"base": "sed_convnext_b_768", "cer_topk": 8}`` instead of a copy of its base. Nested dicts are merged key by
key (an override changes one entry of ``extra`` without restating the others); lists and scalars are replaced whole.
A dict holding ``"_delete_": true`` (mmseg's marker) replaces its base's dict whole instead: a ConvNeXt overlay of a
Swin preset drops the Swin-only ``img_size`` of ``backbone_kwargs`` so.
Every method package keeps its presets in a ``model_configs/`` folder read through this module; a flat config
dataclass (SED's, MaskCLIP's) gets its ``replace`` / ``to_dict`` / file loading from :class:`PresetConfig`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["BASE_KEY", "DELETE_KEY", "PresetConfig", "list_config_names", "load_json_config", "merge_overrides"]

_C = TypeVar("_C", bound="PresetConfig")

BASE_KEY = "base"
"""The key naming the config a file overrides (a name in the same folder, without ``.json``)."""

DELETE_KEY = "_delete_"
"""In an override dict, ``"_delete_": true`` means: replace the base's dict instead of merging into it (mmseg)."""


def list_config_names(folder: str | Path) -> list[str]:
    """Names (file stems) of the ``*.json`` configs in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.json"))


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: dicts merge recursively (unless marked ``_delete_``), the rest is replaced.

    Raises:
        ValueError: a ``_delete_`` marker that is not ``true`` / ``false``.
    """
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            start = out.get(key)
            if _replaces(key, value) or not isinstance(start, Mapping):
                start = {}
            # Merging into {} still checks and drops the markers of the dicts nested in a replaced one.
            out[key] = merge_overrides(start, {k: v for k, v in value.items() if k != DELETE_KEY})
        else:
            out[key] = value
    return out


def _replaces(key: str, value: Mapping[str, Any]) -> bool:
    flag = value.get(DELETE_KEY, False)
    if not isinstance(flag, bool):
        raise ValueError(f"{key!r}: {DELETE_KEY!r} must be true or false (replace the base's dict), got {flag!r}")
    return flag


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config file {str(path)!r} cannot be read as JSON ({err}); fix or remove it") from err
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a JSON object, not {type(data).__name__}")
    return data


def load_json_config(folder: str | Path, name: str) -> dict[str, Any]:
    """The fields of config ``name`` in ``folder``, with its chain of bases resolved (the ``base`` key removed).

    Args:
        folder: The method's ``model_configs`` folder.
        name: A config name (file stem).

    Raises:
        ValueError: no such config (the message lists the available ones), a base that does not exist, a cycle of
            bases, or a file that is not a JSON object.
    """
    folder = Path(folder)
    chain: list[str] = []
    layers: list[dict[str, Any]] = []
    current: str | None = name
    while current is not None:
        if current in chain:
            raise ValueError(f"config {name!r} has a cycle of bases: {' -> '.join([*chain, current])}")
        path = folder / f"{current}.json"
        if not path.is_file():
            what = f"config {current!r}" if current == name else f"base config {current!r} (named by {chain[-1]!r})"
            raise ValueError(f"no {what} in {str(folder)!r}; available: {list_config_names(folder)}")
        chain.append(current)
        data = _read(path)
        current = data.pop(BASE_KEY, None)
        if current is not None and not isinstance(current, str):
            raise ValueError(f"config file {str(path)!r}: {BASE_KEY!r} must be a config name, got {current!r}")
        layers.append(data)
    merged: dict[str, Any] = {}
    for layer_name, layer in zip(reversed(chain), reversed(layers), strict=True):
        try:
            merged = merge_overrides(merged, layer)
        except ValueError as err:
            raise ValueError(f"config file {str(folder / f'{layer_name}.json')!r}: {err}") from err
    return merged


class PresetConfig:
    """Base of a flat config dataclass with ``name`` and ``description`` fields (one preset each).

    Subclasses are ``@dataclass`` classes and set ``config_kind`` (``"SED"``), which names them in messages.
    """

    config_kind: ClassVar[str] = "preset"

    def replace(self: _C, **overrides: Any) -> _C:
        """A copy with some fields changed (the dataclass checks the values again).

        Raises:
            ValueError: an unknown field name (the message lists the known ones) or a bad value.
        """
        known = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown {self.config_kind} config fields {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (nested dicts and lists copied)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def named(self: _C, name: str, description: str) -> _C:
        """The config under a registered preset ``name``; an empty ``description`` keeps the config's own."""
        return self.replace(name=name, description=description or getattr(self, "description", ""))

    @classmethod
    def from_json(cls: type[_C], folder: str | Path, name: str, **overrides: Any) -> _C:
        """Read ``<folder>/<name>.json`` (its ``base`` chain resolved) into a config, then apply ``overrides``.

        The file's ``name`` defaults to its stem.

        Raises:
            ValueError: no such config (the message lists them), or an unknown field or bad value.
        """
        data = load_json_config(folder, name)
        data.setdefault("name", name)
        return cls().replace(**data).replace(**overrides)

    @classmethod
    def for_weights(
        cls: type[_C], weights: Any, preset: str | None, get_preset_config: Callable[..., _C], **overrides: Any
    ) -> _C:
        """The config to build saved weights (``ovcore.hub.PretrainedWeights``) with.

        The saved config, unless the caller names another preset than the saved one: then that preset's config
        (``get_preset_config(preset, **overrides)``), the weights having to fit it.

        Raises:
            ValueError: an unknown preset or field.
        """
        if preset is None or preset == weights.preset:
            return cls().replace(**weights.config).replace(**overrides)
        return get_preset_config(preset, **overrides)
