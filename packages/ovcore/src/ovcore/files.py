"""Atomic file writes and strict JSON, shared by checkpoints, caches, prepared datasets and result files.

Every writer here writes a hidden temporary file beside the destination and renames it over the final name with
``os.replace`` (atomic on POSIX within one filesystem), so a crash leaves the old file or the complete new one,
never a torn one that a later run would trust. A writer killed before the rename (``SIGKILL``, a power cut) leaves
its temporary behind; :func:`remove_stale_temporaries` deletes those of dead processes when the command runs again.
A failed write (disk full, read-only folder, torch's ``inline_container.cc`` errors) is raised as a
:class:`WriteError` that names the file and the free space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "WriteError",
    "atomic_write",
    "atomic_write_text",
    "format_bytes",
    "free_space",
    "json_safe",
    "remove_stale_temporaries",
    "temporary_path",
    "write_json",
]

_JSON_KEY_TYPES = (str, int, float, bool, type(None))

# ".<final name>.<pid>.<8 hex digits>.tmp": the naming scheme of temporary_path, read back by remove_stale_temporaries.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")

# Below this much free space a failed write is reported as a full disk.
_NEARLY_FULL = 64 * 2**20


class WriteError(OSError):
    """A file could not be written; the message names the file, the free space on its disk and what to do."""

    def __init__(self, message: str, path: Path, code: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.filename = str(path)
        self.errno = code

    def __str__(self) -> str:
        return self.message


def format_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units, one decimal)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # not reached


def free_space(path: str | os.PathLike) -> int | None:
    """Free bytes on the disk holding ``path`` (or its nearest existing parent); None when the OS cannot tell."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _write_error(path: Path, err: BaseException) -> WriteError:
    """Explain a failed write of ``path`` (the OS's or torch's error) in one sentence with the free space."""
    code = err.errno if isinstance(err, OSError) else None
    free = free_space(path.parent)
    where = f"free space of {path.parent} unknown" if free is None else f"{format_bytes(free)} free in {path.parent}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):  # definite, even on a nearly full disk
        return WriteError(
            f"cannot write {path}: permission denied (the folder is read-only for this user); choose a writable "
            "folder or fix its permissions", path, code,
        )
    if code == errno.ENOSPC or (free is not None and free < _NEARLY_FULL):
        return WriteError(
            f"cannot write {path}: no space left on the device ({where}); free some space or write to another disk",
            path, errno.ENOSPC,
        )
    # torch.save's RuntimeErrors (inline_container.cc) say nothing useful to a user; an OSError's own words do.
    reason = (err.strerror or str(err)) if isinstance(err, OSError) else "the write failed"
    return WriteError(
        f"cannot write {path}: {reason} ({where}); check the disk and the folder, then run again", path, code
    )


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden temporary file :func:`atomic_write` writes before renaming it to ``path``.

    pid + random token: concurrent writers (processes or threads) never share a temporary file, and a later run can
    tell whether the writer of a leftover one is still alive.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to another user
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike, pattern: str = "*") -> list[Path]:
    """Delete the temporaries of :func:`atomic_write` left in ``directory`` by writers that no longer run.

    Temporaries of live processes (a concurrent writer, this process) are kept.

    Args:
        directory: The folder to clean (missing: nothing to do).
        pattern: ``fnmatch`` pattern of the final file names whose temporaries to delete (``"ckpt_*.pt"``).

    Returns:
        The deleted files.
    """
    import fnmatch

    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TEMPORARY.match(p.name)
        if m and fnmatch.fnmatchcase(m.group("name"), pattern) and not _process_alive(int(m.group("pid"))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


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

    Raises:
        WriteError: the write or the rename failed (disk full, read-only folder; torch.save reports a full disk as a
            RuntimeError from ``inline_container.cc``, which is explained the same way).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, err) from err
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
