"""Plumbing shared by ``clipzss-train`` and ``clipzss-eval``: logging, transforms, tables (errors: ovcore.command)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ovcore.command import UsageError
from ovcore.files import json_safe

__all__ = [
    "UsageError",
    "check_data_root",
    "format_table",
    "json_safe",
    "setup_logging",
    "test_transform",
]


def setup_logging() -> None:
    """INFO logs of ovcore / clipzss on stderr (rank 0 only under torchrun), unless the caller configured logging."""
    root = logging.getLogger()
    if root.handlers:
        return
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def check_data_root(root: str | os.PathLike | None, flag: str) -> Path:
    """The dataset root, which must be a directory.

    Args:
        root: The value given on the command line (None: ``$DETECTRON2_DATASETS`` or ``./datasets``).
        flag: The option's name, for the message.

    Raises:
        UsageError: the directory does not exist.
    """
    from .benchmarks import root_or_default

    path = root_or_default(root)
    if not path.is_dir():
        origin = "" if root is not None else " (the default: $DETECTRON2_DATASETS or ./datasets)"
        raise UsageError(
            f"{flag} {path}{origin} is not a directory; give the folder holding the prepared datasets "
            "(`ovcore prepare ...`, or `ovcore demo-data --root DIR` for the demo scenes)"
        )
    return path


def test_transform(crop_size: int, short_side: int | None) -> Any:
    """mmseg/ZegCLIP test resize: short side to ``short_side`` (default: the crop), long side by aspect ratio.

    ZegCLIP's ``Resize(img_scale=(2048, 512), keep_ratio=True, min_size=512)`` at a 512 crop (spec §2.4); 0 keeps the
    original resolution.
    """
    from ovcore.data import MMSegTestTransform

    side = crop_size if short_side is None else short_side
    if side < 0:
        raise UsageError(f"the test short side must be >= 0, got {side}")
    if side == 0:
        return None
    return MMSegTestTransform(scale=(4 * side, side), min_size=side)


def _cell(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_COLUMNS = (
    ("benchmark", "benchmark", 0),
    ("images", "num_images", 0),
    ("pAcc", "pAcc", 1),
    ("mIoU(S)", "mIoU_seen", 1),
    ("mIoU(U)", "mIoU_unseen", 1),
    ("hIoU", "hIoU", 1),
    ("mIoU", "mIoU", 1),
    ("img/s", "images_per_s", 2),
    ("ms/img", "ms_per_image", 1),
)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of results (percent, one decimal as the paper; '-' where a metric does not apply)."""
    cells = [[title for title, _, _ in _COLUMNS]]
    for row in rows:
        cells.append([_cell(row.get(key), digits) for _, key, digits in _COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
