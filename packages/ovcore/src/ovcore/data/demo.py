"""A procedural, deterministic segmentation dataset with named categories, for demos, smoke tests and CI.

Each scene is sky above a horizon, one to three ground bands (grass, water, sand) and one to three objects (red
circle, blue square, yellow triangle, a striped ellipse), each with its own colour and texture. Scenes are drawn
with integer arithmetic only from a PCG64 stream seeded by ``(seed, split, index)``, so they are bit-identical
across runs and machines (no floating-point rounding or transcendental functions that could differ by
platform), and a 128x128 scene takes well under a millisecond.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ovcore.data.catalog import DatasetInfo, SplitLayout, default_root, register_dataset
from ovcore.data.io import write_image, write_label

__all__ = ["DEMO_CLASSES", "DemoSegmentation", "generate_demo_scene", "write_demo_dataset"]

DEMO_CLASSES: tuple[str, ...] = (
    "sky",
    "grass",
    "water",
    "sand",
    "red circle",
    "blue square",
    "yellow triangle",
    "striped texture",
)
SKY, GRASS, WATER, SAND, CIRCLE, SQUARE, TRIANGLE, STRIPES = range(8)
_SPLIT_CODES = {"train": 0, "val": 1}
_DEMO_DIR = "demo"

register_dataset(
    DatasetInfo(
        "demo",
        num_classes=len(DEMO_CLASSES),
        ignore_index=255,
        class_json="",
        splits={
            "train": SplitLayout(f"{_DEMO_DIR}/images/train", f"{_DEMO_DIR}/annotations/train"),
            "val": SplitLayout(f"{_DEMO_DIR}/images/val", f"{_DEMO_DIR}/annotations/val"),
        },
        image_ext=".png",
        prepare="ovcore demo-data",
        description="procedural demo scenes, 8 named classes (written by `ovcore demo-data`)",
        names=DEMO_CLASSES,
    )
)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 16 or w < 16:
        raise ValueError(f"demo scenes need at least 16x16 pixels, got {h}x{w}")
    return h, w


def _polyline(rng: np.random.Generator, width: int, low: int, high: int, knots: int = 5) -> np.ndarray:
    """Integer y(x) for x in 0..width-1, piecewise linear through random knots in [low, high]."""
    kx = np.arange(knots, dtype=np.int64) * (width - 1) // (knots - 1)
    ky = rng.integers(low, max(low, high) + 1, size=knots)
    xs = np.arange(width, dtype=np.int64)
    seg = np.clip(np.searchsorted(kx, xs, side="right") - 1, 0, knots - 2)
    x0, x1, y0, y1 = kx[seg], kx[seg + 1], ky[seg], ky[seg + 1]
    return y0 + ((y1 - y0) * (xs - x0)) // np.maximum(x1 - x0, 1)


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    image[mask] = colour[mask] if colour.ndim == 3 else colour


def generate_demo_scene(
    index: int, *, size: int | tuple[int, int] = 128, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Draw scene ``index`` of a split.

    Args:
        index: scene index (>= 0).
        size: ``H`` (square) or ``(H, W)``.
        seed: dataset seed (>= 0).
        split: ``"train"`` or ``"val"`` (different streams).

    Returns:
        ``(image uint8 (H, W, 3), label uint8 (H, W))`` with label ids indexing :data:`DEMO_CLASSES`.
    """
    if split not in _SPLIT_CODES:
        raise ValueError(f"demo split must be 'train' or 'val', got {split!r}")
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be non-negative, got index={index}, seed={seed}")
    h, w = _size_hw(size)
    rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
    ys = np.arange(h, dtype=np.int64)[:, None]
    xs = np.arange(w, dtype=np.int64)[None, :]
    image = np.zeros((h, w, 3), dtype=np.int64)
    label = np.zeros((h, w), dtype=np.int64)

    # Background: sky above a horizon, then 1-3 ground bands separated by wavy lines.
    horizon = _polyline(rng, w, h * 25 // 100, h * 45 // 100)
    n_bands = int(rng.integers(1, 4))
    grounds = rng.permutation(np.array([GRASS, WATER, SAND]))[:n_bands]
    band = np.zeros((h, w), dtype=np.int64)
    for b in range(1, n_bands):
        centre = h * (45 + 55 * b // n_bands) // 100
        line = np.maximum(_polyline(rng, w, centre - h // 12, centre + h // 12), horizon + 1)
        band += ys >= line[None, :]
    label[:] = grounds[band]
    label[ys < horizon[None, :]] = SKY

    noise = rng.integers(-20, 21, size=(h, w))
    gradient = (ys * 50 // h) + 0 * xs
    textures = {
        SKY: np.stack([110 + gradient, 170 + gradient, 235 + 0 * gradient], -1),
        GRASS: np.stack([55 + noise // 2, 140 + noise - 30 * (((xs * 7 + ys * 3) % 11) == 0), 45 + 0 * noise], -1),
        WATER: np.stack([35 + 0 * ys + 0 * xs, 95 + 45 * (((ys + (xs // 6) % 3) % 5) == 0), 170 + noise // 4], -1),
        SAND: np.stack([205 + noise, 185 + noise, 135 + noise // 2], -1),
    }
    for cls, texture in textures.items():
        _paint(image, label == cls, texture)

    # Objects: 1-3 distinct shape classes, painted in order (later ones occlude earlier ones).
    n_objects = int(rng.integers(1, 4))
    short = min(h, w)
    for cls in rng.permutation(np.array([CIRCLE, SQUARE, TRIANGLE, STRIPES]))[:n_objects]:
        r = int(rng.integers(max(3, short * 10 // 100), max(4, short * 22 // 100) + 1))
        cx = int(rng.integers(r // 2, w - r // 2))
        cy = int(rng.integers(h * 30 // 100, h - r // 2))
        dx, dy = xs - cx, ys - cy
        if cls == CIRCLE:
            mask = dx * dx + dy * dy <= r * r
            colour = np.array([210, 35, 35])
        elif cls == SQUARE:
            mask = (np.abs(dx) <= r) & (np.abs(dy) <= r)
            colour = np.array([35, 60, 215])
        elif cls == TRIANGLE:
            pts = [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)]
            pairs = zip(pts, pts[1:] + pts[:1], strict=True)
            edges = [(xb - xa) * (ys - ya) - (yb - ya) * (xs - xa) for (xa, ya), (xb, yb) in pairs]
            mask = np.all([e <= 0 for e in edges], axis=0) | np.all([e >= 0 for e in edges], axis=0)
            colour = np.array([235, 215, 40])
        else:
            rx, ry = r + r // 2, max(2, r * 2 // 3)
            mask = dx * dx * ry * ry + dy * dy * rx * rx <= rx * rx * ry * ry
            period = int(rng.integers(3, 7))
            on = (((xs + ys) // period) % 2) == 0
            colour = np.where(on[..., None], np.array([240, 240, 240]), np.array([95, 40, 130]))
        label[mask] = cls
        _paint(image, mask, colour)

    image += rng.integers(-6, 7, size=(h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), label.astype(np.uint8)


class DemoSegmentation(Dataset):
    """In-memory procedural dataset; scene ``i`` is generated on access (deterministic).

    Args:
        num_images: dataset length.
        size: ``H`` or ``(H, W)`` of every scene.
        seed: dataset seed.
        split: ``"train"`` or ``"val"``.
        transform: callable applied to each sample dict.
    """

    class_names: list[str] = list(DEMO_CLASSES)
    num_classes: int = len(DEMO_CLASSES)
    ignore_index: int = 255

    def __init__(
        self,
        num_images: int = 64,
        size: int | tuple[int, int] = 128,
        seed: int = 0,
        split: str = "train",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if split not in _SPLIT_CODES:
            raise ValueError(f"demo split must be 'train' or 'val', got {split!r}")
        self.num_images = num_images
        self.size = _size_hw(size)
        self.seed = seed
        self.split = split
        self.transform = transform
        self.class_names = list(DEMO_CLASSES)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} demo images")
        index %= self.num_images
        image, label = generate_demo_scene(index, size=self.size, seed=self.seed, split=self.split)
        sample = {
            "image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
            "label": torch.from_numpy(label.astype(np.int64)),
            "name": f"demo_{self.split}_{index:06d}",
        }
        return self.transform(sample) if self.transform is not None else sample


def write_demo_dataset(
    root: str | os.PathLike | None = None,
    *,
    num_train: int = 64,
    num_val: int = 16,
    size: int | tuple[int, int] = 128,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write the demo dataset in the prepared layout, readable with ``build_dataset("demo", root)``.

    Layout: ``<root>/demo/images/{train,val}/demo_<split>_<i>.png`` (lossless, so reading back gives exactly the
    in-memory scenes) and ``<root>/demo/annotations/{train,val}/...png`` (uint8 ids), plus ``demo/info.json``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        num_train / num_val: scenes per split.
        size: ``H`` or ``(H, W)``.
        seed: dataset seed.
        overwrite: rewrite existing files; otherwise existing files are kept (same parameters required).
        progress: show a tqdm bar.

    Returns:
        The ``<root>/demo`` folder.
    """
    from tqdm import tqdm

    root = Path(root) if root is not None else default_root()
    out = root / _DEMO_DIR
    h, w = _size_hw(size)
    params = {"num_train": num_train, "num_val": num_val, "size": [h, w], "seed": seed}
    info_path = out / "info.json"
    if info_path.exists() and not overwrite:
        previous = json.loads(info_path.read_text())
        if {k: previous.get(k) for k in params} != params:
            raise ValueError(
                f"{out} already holds a demo dataset written with {previous}; pass overwrite=True (--overwrite) "
                f"to replace it with {params}"
            )
    jobs = [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]
    if overwrite:
        # Drop scenes of a previous, larger dataset so the folder holds exactly the requested one.
        wanted = {f"demo_{split}_{i:06d}.png" for split, i in jobs}
        for folder in (out / "images", out / "annotations"):
            for stale in folder.glob("*/demo_*.png") if folder.is_dir() else ():
                if stale.name not in wanted:
                    stale.unlink()
    for split, i in tqdm(jobs, desc="demo", disable=not progress):
        name = f"demo_{split}_{i:06d}.png"
        image_path = out / "images" / split / name
        label_path = out / "annotations" / split / name
        if not overwrite and image_path.exists() and label_path.exists():
            continue
        image, label = generate_demo_scene(i, size=(h, w), seed=seed, split=split)
        write_image(image_path, image)
        write_label(label_path, label)
    out.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps({**params, "classes": list(DEMO_CLASSES)}, indent=1))
    return out
