"""Lazy package exports (PEP 562), so that ``import sed`` or a console script's ``--help`` does not import torch.

A package lists where each public name lives and gets a module ``__getattr__`` / ``__dir__`` that import the defining
submodule on first access::

    __getattr__, __dir__ = lazy_exports(__name__, {"create_sed": "sed._registry", "SED": "sed.model"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package`` serving ``name -> defining module`` from ``exports``.

    A value equal to ``package + "." + name`` exports the submodule itself.
    """
    module = importlib.import_module(package)

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if target == f"{package}.{name}":
            value: Any = importlib.import_module(target)
        else:
            value = getattr(importlib.import_module(target), name)
        setattr(module, name, value)  # later look-ups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(module)) | set(exports))

    return __getattr__, __dir__
