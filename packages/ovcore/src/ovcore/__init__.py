"""ovcore: shared primitives for open-vocabulary and zero-shot semantic segmentation.

Submodules are imported lazily (``ovcore.clip``, ``ovcore.text``, ``ovcore.costmap``, ``ovcore.attention``,
``ovcore.metrics``, ``ovcore.data``, ``ovcore.evaluate``, ``ovcore.train``, ``ovcore.safe_load``) so that
``import ovcore`` stays cheap for the command line and for methods that need only one part.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("ovcore")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

_SUBMODULES = (
    "clip",
    "text",
    "costmap",
    "attention",
    "files",
    "registry",
    "configs",
    "method",
    "hub",
    "vis",
    "metrics",
    "data",
    "evaluate",
    "benchmarks",
    "train",
    "safe_load",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"ovcore.{name}")
    raise AttributeError(f"module 'ovcore' has no attribute {name!r}")
