"""The options every command shares, as dataclasses: the same flag names and meanings in every method.

* :class:`DataOptions`: ``--data-root``, the folder holding the prepared datasets;
* :class:`OutputOptions`: ``--output-dir``, where a command writes its results;
* :class:`ModelOptions`: ``--preset`` (a model preset of the method), ``--checkpoint`` (its weights), ``--device``.

Training commands add ``--resume`` / ``--resume-from`` (``ovcore.train.TrainConfig``) and ``--recipe`` (the training
recipe). Old spellings of a flag keep working for one release through :func:`rename_flags`, which rewrites them and
prints one deprecation line. This module imports only the standard library, so ``--help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovcore.cmd.errors import UsageError
from ovcore.cmd.log import warn

__all__ = ["DataOptions", "ModelOptions", "OutputOptions", "check_data_root", "rename_flags"]


@dataclass(kw_only=True)  # keyword-only, so commands can add positional fields (predict's INPUTS)
class DataOptions:
    """Where the datasets are."""

    data_root: str | None = None
    """Dataset root holding the prepared datasets (written by `ovcore prepare ...`, or `ovcore demo-data` for the
    demo scenes); default $DETECTRON2_DATASETS or ./datasets."""


@dataclass(kw_only=True)
class OutputOptions:
    """Where the results go."""

    output_dir: str | None = None
    """Folder for the results (created if needed); default runs/<command>."""


@dataclass(kw_only=True)
class ModelOptions:
    """Which model: a preset of the method, its weights, and the device."""

    preset: str | None = None
    """Model preset of the method (`<method>.list_presets()`); default: read from the checkpoint when it says."""

    checkpoint: str | None = None
    """Weights of the model (the method's checkpoint format)."""

    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""


def check_data_root(root: str | os.PathLike | None, option: str = "--data-root") -> Path:
    """The dataset root (``$DETECTRON2_DATASETS`` or ``./datasets`` when None), which must be a folder.

    Raises:
        UsageError: it is not a folder; the message names ``option`` and the commands that write one.
    """
    from ovcore.data.catalog import default_root

    path = Path(root).expanduser() if root is not None else default_root()
    if not path.is_dir():
        origin = "" if root is not None else " (the default: $DETECTRON2_DATASETS or ./datasets)"
        raise UsageError(
            f"{option} {path}{origin} is not a folder; give the folder holding the prepared datasets "
            "(`ovcore prepare ...`, or `ovcore demo-data --root DIR` for the demo scenes)"
        )
    return path


def rename_flags(argv: Sequence[str], renames: Mapping[str, str], prog: str) -> list[str]:
    """``argv`` with deprecated flags replaced by their new names, one warning line per flag used.

    Args:
        argv: The command line (without the program name).
        renames: Old flag -> new flag (``{"--data.root": "--data-root"}``); ``--old=value`` is rewritten too.
        prog: The command's name, the prefix of the warning.
    """
    out: list[str] = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        new = renames.get(flag) if flag.startswith("--") else None
        if new is None:
            out.append(arg)
            continue
        warn(prog, f"{flag} is deprecated and will be removed in the next release; use {new}")
        out.append(f"{new}{eq}{value}")
    return out
