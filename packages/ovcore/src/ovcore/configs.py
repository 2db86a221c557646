"""Configs as data: one JSON file per preset, where a file may name a ``base`` and override some of its fields.

This is the overlay rule of open_clip's JSON model configs and mmseg's ``_base_``: ``sed_convnext_b_768_fast.json``
holds ``{"base": "sed_convnext_b_768", "cer_topk": 8}`` instead of a copy of its base. Nested dicts are merged key by
key (an override changes one entry of ``extra`` without restating the others); lists and scalars are replaced whole.
Every method package keeps its presets in a ``model_configs/`` folder read through this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["BASE_KEY", "list_config_names", "load_json_config", "merge_overrides"]

BASE_KEY = "base"
"""The key naming the config a file overrides (a name in the same folder, without ``.json``)."""


def list_config_names(folder: str | Path) -> list[str]:
    """Names (file stems) of the ``*.json`` configs in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.json"))


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: dicts merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


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
    for layer in reversed(layers):
        merged = merge_overrides(merged, layer)
    return merged
