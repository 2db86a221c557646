"""ovcore: shared primitives for open-vocabulary and zero-shot semantic segmentation.

Submodules (``ovcore.clip``, ``ovcore.text``, ``ovcore.data``, ``ovcore.method``, ``ovcore.train``, ... : the
list below) are imported lazily, through :func:`ovcore.lazy.lazy_exports` as every method package does, so that
``import ovcore`` stays cheap for the command line and for methods that need only one part.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ovcore.lazy import lazy_exports

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
    "cmd",
)

__all__ = ["__version__", *_SUBMODULES]


__getattr__, __dir__ = lazy_exports(__name__, {name: f"{__name__}.{name}" for name in _SUBMODULES})
