"""Overlays with a legend, palette label PNGs and console summaries of the classes in a label map (numpy + PIL).

Colours come from :func:`ovcore.vis.colours.palette_for` unless a caller passes its own ``colours``, so the overlay,
the legend and the label PNG of one vocabulary always agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ovcore.vis.colours import palette_for

__all__ = ["LegendEntry", "legend_entries", "summarise_classes", "render_overlay", "save_label_png", "display_name"]


class LegendEntry(NamedTuple):
    """One class present in a label map; unpacks as ``name, colour, fraction, class_id``."""

    name: str
    """Display name: the first synonym of the vocabulary entry."""
    colour: tuple[int, int, int]
    fraction: float
    """Share of the scored (non-ignored) pixels, 0..1."""
    class_id: int
    """Index into the vocabulary."""


def display_name(name: str) -> str:
    """The first synonym of a vocabulary entry (``"person, individual"`` -> ``"person"``), as written."""
    return name.split(", ")[0].strip()


def _colours(class_names: Sequence[str], colours: np.ndarray | None) -> np.ndarray:
    if colours is None:
        return palette_for(class_names)
    colours = np.asarray(colours, dtype=np.uint8)
    if colours.shape != (len(class_names), 3):
        raise ValueError(f"colours must have shape ({len(class_names)}, 3), got {colours.shape}")
    return colours


def _valid_mask(labels: np.ndarray, num_classes: int, ignore_index: int | None) -> np.ndarray:
    valid = labels != ignore_index if ignore_index is not None else np.ones(labels.shape, dtype=bool)
    if valid.any():
        lo, hi = int(labels[valid].min()), int(labels[valid].max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"label ids must lie in 0..{num_classes - 1} (the vocabulary has {num_classes} names)"
                + (f" or equal ignore_index {ignore_index}" if ignore_index is not None else "")
                + f"; found {lo if lo < 0 else hi}"
            )
    return valid


def legend_entries(
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    ignore_index: int | None = None,
    colours: np.ndarray | None = None,
) -> list[LegendEntry]:
    """The classes present in ``labels``, largest area first (ties: lower id first).

    Args:
        labels: integer class ids ``(H, W)``.
        class_names: the vocabulary (id -> name).
        ignore_index: a label value that is not a class (left out, and not counted in the areas).
        colours: ``(T, 3)`` colours to report; default :func:`palette_for` of ``class_names``.

    Raises:
        ValueError: a label id outside the vocabulary.
    """
    labels = np.asarray(labels)
    valid = _valid_mask(labels, len(class_names), ignore_index)
    palette = _colours(class_names, colours)
    ids, counts = np.unique(labels[valid], return_counts=True)
    total = max(int(valid.sum()), 1)
    order = np.lexsort((ids, -counts))
    return [
        LegendEntry(display_name(class_names[int(ids[i])]), tuple(int(v) for v in palette[int(ids[i])]),
                    float(counts[i]) / total, int(ids[i]))
        for i in order
    ]


def summarise_classes(entries: Sequence[LegendEntry], limit: int | None = None) -> str:
    """One console line: ``"sky 41.0%, grass 30.2%, water 12.5% ... and 4 more"``.

    Args:
        entries: from :func:`legend_entries` (already largest first).
        limit: show at most this many; the rest are counted, never dropped silently. ``None``: all.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if not entries:
        return "(no classes)"
    shown = entries if limit is None else entries[:limit]
    text = ", ".join(f"{e.name} {100 * e.fraction:.1f}%" for e in shown)
    hidden = len(entries) - len(shown)
    if hidden:
        text = f"{text} ... and {hidden} more" if shown else f"{hidden} classes"
    return text


def save_label_png(
    path: str | Path,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    ignore_index: int | None = None,
    colours: np.ndarray | None = None,
) -> Path:
    """Write class ids as a PNG whose pixel values are the ids.

    Up to 256 classes: an 8-bit palette PNG coloured like the overlay (ids stay the pixel values, so any viewer
    shows the colours and any reader gets the ids). Beyond 256: a 16-bit grey PNG, since PNG palettes hold 256
    entries at most.

    Args:
        path: output ``.png`` (parent folders are created).
        labels: integer ids ``(H, W)`` in ``0 .. len(class_names) - 1`` (or ``ignore_index``).
        class_names: the vocabulary.
        ignore_index: a label value allowed besides the class ids (drawn black in palette PNGs).
        colours: ``(T, 3)`` colours; default :func:`palette_for` of ``class_names``.

    Raises:
        ValueError: ids outside the vocabulary, or an ignore value that does not fit the PNG's bit depth.
    """
    path = Path(path)
    labels = np.asarray(labels)
    num = len(class_names)
    _valid_mask(labels, num, ignore_index)
    eight_bit = num <= 256 and (ignore_index is None or 0 <= ignore_index <= 255)
    if not eight_bit and num > 65536:
        raise ValueError(f"a label PNG holds at most 65536 classes; the vocabulary has {num}")
    if ignore_index is not None and not 0 <= ignore_index <= 65535:
        raise ValueError(f"ignore_index {ignore_index} does not fit a PNG (0..65535)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if eight_bit:
        image = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)))
        table = np.zeros((256, 3), dtype=np.uint8)
        table[:num] = _colours(class_names, colours)
        image.putpalette(table.reshape(-1).tolist())  # an "L" image becomes "P": the ids stay the pixel values
    else:
        image = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint16)))
    image.save(path, format="PNG")
    return path


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _boundaries(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    return edge


def _blend(image: np.ndarray, labels: np.ndarray, valid: np.ndarray, colours: np.ndarray, alpha: float) -> Image.Image:
    out = image.astype(np.float32)
    ids = np.where(valid, labels, 0)
    out[valid] = (1 - alpha) * out[valid] + alpha * colours[ids[valid]].astype(np.float32)
    out[_boundaries(np.where(valid, labels, -1))] *= 0.35  # dark outlines separate regions of similar colour
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def _legend_panel(entries: Sequence[LegendEntry], title: str | None, height: int) -> Image.Image:
    """White panel listing every entry (colour swatch, name, share), in as many columns as the height needs."""
    font_size = max(11, min(22, height // 24))
    font, title_font = _font(font_size), _font(font_size + 2)
    line, pad, swatch = font_size + 8, 10, font_size + 2
    texts = [f"{e.name}  {100 * e.fraction:.1f}%" for e in entries] or ["(no classes)"]
    top = pad + (line + 4 if title else 0)
    rows = max(1, (height - top - pad) // line)
    columns = math.ceil(len(texts) / rows)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    column_w = max(probe.textbbox((0, 0), t, font=font)[2] for t in texts) + swatch + 3 * pad
    title_w = probe.textbbox((0, 0), title, font=title_font)[2] + 2 * pad if title else 0
    width = max(columns * column_w, title_w, 120)
    panel = Image.new("RGB", (width, max(height, top + min(rows, len(texts)) * line + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    if title:
        draw.text((pad, pad), title, fill=(0, 0, 0), font=title_font)
    for i, text in enumerate(texts):
        x, y = pad + (i // rows) * column_w, top + (i % rows) * line
        if entries:
            draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], fill=entries[i].colour, outline=(0, 0, 0))
        draw.text((x + swatch + pad, y + 2), text, fill=(0, 0, 0), font=font)
    return panel


def render_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    alpha: float = 0.6,
    legend: bool = True,
    min_side: int = 256,
    title: str | None = None,
    ignore_index: int | None = None,
    side_by_side: bool = True,
    colours: np.ndarray | None = None,
) -> Image.Image:
    """The image with its label map blended in, class boundaries drawn, and a legend of the classes present.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        labels: class ids ``(H, W)``, the image's size.
        class_names: the vocabulary (id -> name); the legend shows each name's first synonym.
        alpha: weight of the class colours (0..1).
        legend: add the legend panel (every class present, largest first, with its share of the pixels).
        min_side: images whose short side is smaller are enlarged by an integer factor (nearest) for legibility.
        title: heading of the legend.
        ignore_index: label value drawn unblended and left out of the legend (e.g. 255 in ground truth).
        side_by_side: put the untouched image left of the overlay.
        colours: ``(T, 3)`` colours; default :func:`ovcore.vis.palette_for` of ``class_names``.

    Raises:
        ValueError: sizes differ, ``alpha`` is outside 0..1, or a label id is outside the vocabulary.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got shape {image.shape}")
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in 0..1, got {alpha}")
    palette = _colours(class_names, colours)
    entries = legend_entries(labels, class_names, ignore_index=ignore_index, colours=palette)
    scale = max(1, math.ceil(min_side / max(1, min(labels.shape))))
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
        labels = np.repeat(np.repeat(labels, scale, 0), scale, 1)
    valid = labels != ignore_index if ignore_index is not None else np.ones(labels.shape, dtype=bool)
    overlay = _blend(image.astype(np.uint8), labels, valid, palette, alpha)
    parts = ([Image.fromarray(np.ascontiguousarray(image.astype(np.uint8)))] if side_by_side else []) + [overlay]
    if legend:
        parts.append(_legend_panel(entries, title, overlay.height))
    gap = 10
    canvas = Image.new(
        "RGB", (sum(p.width for p in parts) + gap * (len(parts) - 1), max(p.height for p in parts)), (255, 255, 255)
    )
    x = 0
    for part in parts:
        canvas.paste(part, (x, 0))
        x += part.width + gap
    return canvas
