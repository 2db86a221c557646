"""Pickle gadgets for the safe-loading tests: objects that, if unpickled, create a marker file.

Shared by tests/ovcore (``ovcore.safe_load``) and tests/sed (the SED checkpoint reader); the folder is on the pytest
``pythonpath`` (root pyproject.toml).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import numpy.testing

NUMPY_EXEC = numpy.testing._private.utils.runstring  # exec(astr, dict)
"""A numpy callable that executes a string: an allowlist of "anything under numpy" admits it."""
NUMPY_CALL = numpy.testing.assert_no_warnings  # func(*args)
"""A numpy callable that calls another object."""


class Gadget:
    """Pickles as ``func(*args)``; unpickling it runs that call."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def write_code(marker: Path) -> str:
    """Python source that creates ``marker``."""
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"


def gadgets(marker: Path) -> dict[str, Gadget]:
    """Every gadget by name; each creates ``marker`` when unpickled."""
    code = write_code(marker)
    return {
        "os.system": Gadget(os.system, f"echo pwned > {shlex.quote(str(marker))}"),
        "builtins.eval": Gadget(eval, code),
        "builtins.exec": Gadget(exec, code),
        "builtins.getattr": Gadget(marker.touch),  # a bound method pickles as getattr(obj, name)
        "numpy exec": Gadget(NUMPY_EXEC, code, {}),
        "numpy call": Gadget(NUMPY_CALL, NUMPY_EXEC, code, {}),
    }


GADGET_NAMES = list(gadgets(Path("unused")))
"""The names of :func:`gadgets`, for ``pytest.mark.parametrize``."""
