"""Package data: class-name JSON files and the zero-shot split table, read through importlib.resources."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["class_names_from_json", "zeroshot_table", "ade847_full_ids"]


@functools.cache
def _load_json(*parts: str) -> Any:
    resource = resources.files("ovcore.data")
    for part in parts:
        resource = resource.joinpath(part)
    if not resource.is_file():
        raise RuntimeError(f"package data file ovcore/data/{'/'.join(parts)} is missing; reinstall ovcore")
    return json.loads(resource.read_text(encoding="utf-8"))


def class_names_from_json(file_name: str) -> list[str]:
    """Class names from ``ovcore/data/classnames/<file_name>`` (array index = contiguous class id)."""
    names = _load_json("classnames", file_name)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RuntimeError(f"classnames/{file_name} is not a JSON array of strings")
    return list(names)


def zeroshot_table() -> dict[str, Any]:
    """The parsed ``zeroshot_splits.json`` (keys ``pascal_voc_2012``, ``coco_stuff_164k``, ``pascal_context_59``)."""
    return _load_json("zeroshot_splits.json")


def ade847_full_ids() -> list[dict[str, Any]]:
    """The 847 ``{"trainId", "ade_id", "name"}`` entries mapping ADE20K-full object ids to train ids."""
    return list(_load_json("classnames", "ade847_full_ids.json"))
