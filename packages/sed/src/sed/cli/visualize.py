"""Image reading for ``sed-predict`` and ``sed-demo``; colours, overlays and legends live in :mod:`ovcore.vis`.

The overlay names are re-exported so ``from sed.cli.visualize import render_overlay`` keeps working; new code
imports them from ``ovcore.vis``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ovcore.vis import legend_entries, palette_for, render_overlay, save_label_png, summarise_classes

__all__ = ["read_rgb", "render_overlay", "save_label_png", "legend_entries", "summarise_classes", "palette_for"]


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``uint8 (H, W, 3)`` RGB, read by ``ovcore.data.io.read_image`` (EXIF orientation applied).

    Raises:
        ValueError: the file is missing or not an image PIL can read (the message names it).
    """
    from ovcore.data.io import read_image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"input image not found: {str(path)!r}")
    return read_image(path).permute(1, 2, 0).contiguous().numpy()
