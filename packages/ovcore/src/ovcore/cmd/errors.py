"""One error convention for every console script of the workspace (``ovcore``, ``sed-*``, ``clipzss-*``).

A command's body runs inside :func:`run_command`. Bad input and environment limits become one line on stderr,
``prog: error: <what>, <which file or option>, <what to do>``, and exit status 2 (argparse's convention); Ctrl-C
becomes ``prog: interrupted`` and status 130. Only unexpected errors (bugs: ``TypeError``, ``KeyError``...) keep
their traceback; ``OVCORE_TRACEBACK=1`` shows the traceback of a reported error as well.

The checks below (:func:`check_output_dir`, :func:`require_file`, :func:`check_min`...) let a command validate its
paths and options before it builds anything heavy, so a typo is reported within a second, not after CLIP is built.
"""

from __future__ import annotations

import errno
import os
import pickle
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "USER_ERRORS",
    "UsageError",
    "check_min",
    "check_output_dir",
    "check_positive",
    "check_range",
    "describe_error",
    "require_file",
    "run_command",
]

EXIT_USAGE = 2
"""Exit status of a reported user / environment error (argparse's)."""

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT, the shell's convention)."""

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # bad input (and damaged files, which the loaders report as ValueError)
    OSError,  # missing files, read-only folders, full disks
    RuntimeError,  # environment limits: weights not available offline, CUDA out of memory
    EOFError,  # the safety net for a damaged file a loader did not explain: empty or truncated
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)
"""Exceptions reported as one line; anything else is a bug and keeps its traceback."""

# RuntimeError subclasses that are bugs, not environment limits.
_BUGS: tuple[type[BaseException], ...] = (NotImplementedError, RecursionError)


class UsageError(ValueError):
    """Bad user input: reported as ``prog: error: <message>`` with exit status 2."""


def _one_line(text: str) -> str:
    # A multi-line message (tables of keys, hints in parentheses) would break the one-line convention.
    return " ".join(text.split())


def _describe_os_error(err: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` -> ``permission denied: x; <what to do>``."""
    if err.strerror is None or err.filename is None:
        return str(err) or type(err).__name__
    what = f"{err.strerror[:1].lower()}{err.strerror[1:]}: {err.filename}"
    advice = {
        errno.ENOENT: "check the path",
        errno.EACCES: "choose a location this user can write to, or fix its permissions",
        errno.EPERM: "choose a location this user can write to, or fix its permissions",
        errno.EROFS: "choose a folder on a writable disk",
        errno.ENOSPC: "free some space or write to another disk",
        errno.EEXIST: "it is in the way: move it or choose another path",
        errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
        errno.EISDIR: "give a file, not a folder",
    }.get(err.errno or 0)
    return f"{what}; {advice}" if advice else what


def describe_error(err: BaseException) -> str:
    """The one-line message of a reported error (without the ``prog: error:`` prefix)."""
    text = _describe_os_error(err) if isinstance(err, OSError) else str(err)
    if not text:
        text = f"{type(err).__name__} (no message)"
    return _one_line(text)


def _report(prog: str, line: str) -> None:
    sys.stderr.write(f"{prog}: {line}\n")
    sys.stderr.flush()


def run_command(prog: str, body: Callable[[], Any]) -> int:
    """Run a command's body (parsing included) under the error convention.

    Args:
        prog: The command's name, the prefix of its error line.
        body: Parses the command line and does the work; its return value is ignored. ``SystemExit`` (``--help``,
            the parser's own errors) passes through.

    Returns:
        0 on success, :data:`EXIT_USAGE` after a reported error, :data:`EXIT_INTERRUPTED` after Ctrl-C.
    """
    try:
        body()
    except KeyboardInterrupt:
        _report(prog, "interrupted")
        return EXIT_INTERRUPTED
    except _BUGS:
        raise
    except USER_ERRORS as err:
        if os.environ.get("OVCORE_TRACEBACK"):
            traceback.print_exc()
        _report(prog, f"error: {describe_error(err)}")
        return EXIT_USAGE
    return 0


# ------------------------------------------------------------------------------------------------------- checks
def require_file(path: str | os.PathLike | None, option: str) -> Path | None:
    """``Path(path)`` when it is an existing file (None stays None).

    Raises:
        UsageError: missing, or a folder; the message names ``option``.
    """
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{option} {p} is a folder; give a file")
    if not p.is_file():
        raise UsageError(f"{option} {p}: no such file; check the path")
    return p


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """Make sure ``path`` can be used as an output folder, without creating it.

    The nearest existing folder on the way must be a folder and writable (tested by creating and deleting a hidden
    probe file, which also catches read-only disks that ``os.access`` misses).

    Raises:
        UsageError: ``path`` (or a parent) is a file, or the folder is not writable; the message names ``option``.
    """
    p = Path(path).expanduser()
    existing = _nearest_existing(p.absolute())
    if not existing.is_dir():
        where = "" if existing == p.absolute() else f" (its parent {existing} is a file)"
        raise UsageError(f"{option} {p} is not a folder{where}; give a folder path (it is created if needed)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise UsageError(
            f"{option} {p}: cannot write in {existing} ({reason}); choose a writable folder or fix its permissions"
        ) from None
    return p


def check_min(option: str, value: float | None, minimum: float, *, hint: str = "") -> None:
    """Raise ``UsageError("<option> must be >= <minimum>, got <value>")`` when ``value < minimum`` (None passes)."""
    if value is not None and value < minimum:
        raise UsageError(f"{option} must be >= {minimum}, got {value}" + (f"; {hint}" if hint else ""))


def check_positive(option: str, value: float | None) -> None:
    """Raise ``UsageError("<option> must be > 0, got <value>")`` for a zero or negative value (None passes)."""
    if value is not None and not value > 0:  # "not >": nan is refused too
        raise UsageError(f"{option} must be > 0, got {value}")


def check_range(option: str, value: float | None, low: float, high: float, *, open_low: bool = False,
                open_high: bool = False) -> None:
    """Raise ``UsageError`` naming ``option`` when ``value`` is outside ``[low, high]`` (ends open on request)."""
    if value is None:
        return
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above:
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise UsageError(f"{option} must lie in {interval}, got {value}")
