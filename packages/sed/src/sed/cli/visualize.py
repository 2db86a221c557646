"""Label-map PNGs and overlays with a legend (PIL only), used by ``sed-predict`` and ``sed-demo``."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["palette", "save_label_map", "render_overlay", "read_rgb"]

_MAX_LEGEND_ROWS = 40


def palette(num_classes: int) -> np.ndarray:
    """Distinct, deterministic colours ``(num_classes, 3) uint8``: hues spaced by the golden ratio, with saturation
    and value alternating so neighbouring ids differ even when the hue wraps around."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for i in range(num_classes):
        hue = (0.07 + i * 0.6180339887) % 1.0
        sat = (0.85, 0.6, 1.0)[i % 3]
        val = (0.95, 0.75)[(i // 3) % 2]
        colours[i] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)]
    return colours[:num_classes]


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


def save_label_map(path: str | Path, labels: np.ndarray, num_classes: int) -> Path:
    """Write class ids as a PNG: 8-bit palette PNG (colours of :func:`palette`) when the ids fit in a byte, else a
    16-bit grayscale PNG (no palette is possible there).

    Args:
        path: output ``.png``.
        labels: integer array (H, W) of class ids in ``0 .. num_classes - 1``.
        num_classes: vocabulary size (chooses 8 or 16 bits).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    if num_classes > 65536 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"label ids must lie in 0..{num_classes - 1} (and num_classes <= 65536)")
    if num_classes <= 256:
        im = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)))
        flat = np.zeros((256, 3), dtype=np.uint8)
        flat[:num_classes] = palette(num_classes)
        im.putpalette(flat.reshape(-1).tolist())  # an "L" image becomes "P": ids stay the pixel values
    else:
        im = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint16)))
    im.save(path, format="PNG")
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


def render_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    alpha: float = 0.6,
    min_side: int = 256,
    title: str | None = None,
    ignore_index: int | None = None,
    side_by_side: bool = True,
) -> Image.Image:
    """The image with its label map blended in, class boundaries drawn, and a legend of the classes present.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        labels: class ids ``(H, W)`` (the same size as the image).
        class_names: vocabulary (id -> name); synonyms after ``", "`` are left out of the legend.
        alpha: weight of the class colours.
        min_side: images whose short side is smaller are enlarged by an integer factor (nearest) for legibility.
        title: optional heading of the legend.
        ignore_index: label value drawn unblended (e.g. 255 in ground truth).
        side_by_side: put the untouched image left of the overlay.

    Returns:
        An RGB image: [the image,] the overlay, and the legend (colour, name, share of pixels, largest first).
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    h, w = labels.shape
    scale = max(1, math.ceil(min_side / max(1, min(h, w))))
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
        labels = np.repeat(np.repeat(labels, scale, 0), scale, 1)
    colours = palette(len(class_names))
    valid = labels != ignore_index if ignore_index is not None else np.ones(labels.shape, dtype=bool)
    ids = np.where(valid, labels, 0).clip(0, max(len(class_names) - 1, 0))
    blended = image.astype(np.float32)
    blended[valid] = (1 - alpha) * blended[valid] + alpha * colours[ids[valid]].astype(np.float32)
    blended[_boundaries(np.where(valid, labels, -1))] *= 0.35
    overlay = Image.fromarray(blended.round().clip(0, 255).astype(np.uint8))

    present, counts = np.unique(labels[valid], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    total = max(int(valid.sum()), 1)
    rows = [(int(present[i]), 100.0 * counts[i] / total) for i in order]
    font_size = max(11, min(22, overlay.height // 24))
    font = _font(font_size)
    title_font = _font(font_size + 2)
    line, pad, swatch = font_size + 8, 10, font_size + 2
    shown = rows[:_MAX_LEGEND_ROWS]
    texts = [f"{class_names[c].split(', ')[0]}  {share:.1f}%" for c, share in shown]
    if len(rows) > len(shown):
        texts.append(f"... {len(rows) - len(shown)} more")
    probe = ImageDraw.Draw(overlay)
    widths = [probe.textbbox((0, 0), t, font=font)[2] for t in texts] or [0]
    title_w = probe.textbbox((0, 0), title, font=title_font)[2] if title else 0
    panel_w = max(max(widths) + swatch + 3 * pad, title_w + 2 * pad, 120)
    legend_h = pad + (line + 4 if title else 0) + line * len(texts) + pad
    left = overlay.width + pad if side_by_side else 0
    canvas = Image.new("RGB", (left + overlay.width + panel_w, max(overlay.height, legend_h)), (255, 255, 255))
    if side_by_side:
        canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, 0))
    canvas.paste(overlay, (left, 0))
    draw = ImageDraw.Draw(canvas)
    x, y = left + overlay.width + pad, pad
    if title:
        draw.text((x, y), title, fill=(0, 0, 0), font=title_font)
        y += line + 4
    for i, text in enumerate(texts):
        if i < len(shown):
            colour = tuple(int(v) for v in colours[shown[i][0]])
            draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], fill=colour, outline=(0, 0, 0))
        draw.text((x + swatch + pad, y + 2), text, fill=(0, 0, 0), font=font)
        y += line
    return canvas
