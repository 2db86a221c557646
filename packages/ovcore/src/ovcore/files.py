"""Atomic file writes and strict JSON, shared by checkpoints, caches, prepared datasets and result files.

Every writer here writes a hidden temporary file beside the destination and renames it over the final name with
``os.replace`` (atomic on POSIX within one filesystem), so a crash leaves the old file or the complete new one,
never a torn one that a later run would trust.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_text", "json_safe", "write_json"]

_JSON_KEY_TYPES = (str, int, float, bool, type(None))


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS lets us open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, durable: bool = False) -> Path:
    """Produce ``path`` with ``write(tmp_path)`` so that ``path`` is either the old file or the complete new one.

    Args:
        path: Destination; its directory is created if needed.
        write: Writes the whole file to the path it is given (``torch.save``, ``Image.save``, ``save_file``...).
        durable: Also fsync the file and the directory, so the new file survives a power cut (checkpoints).

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid + random token: concurrent writers (processes or threads) never share a temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with every nan/inf float replaced by None, recursing into mappings, lists and tuples.

    ``json.dumps(json_safe(results), allow_nan=False)`` is then strict JSON (plain ``json.dump`` would write the
    non-standard ``NaN``). Mapping keys JSON can hold are kept; other keys (tuples, paths) become strings.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {(k if isinstance(k, _JSON_KEY_TYPES) else str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Strict JSON (nan/inf as null, other objects as ``str``), indented, written atomically; returns the path."""
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False, default=str) + "\n")
