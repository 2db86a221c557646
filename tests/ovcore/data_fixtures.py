"""Writers of tiny dataset fixtures in the official on-disk formats (imported by the other test_data_* files).

JPEG images, single-channel "L" PNG labels, palette ("P") PNGs as VOC's SegmentationClass, uint16 TIFFs written
by PIL as the official ADE20K-full / PASCAL Context-459 scripts do, MATLAB v5 ``.mat`` files with ``LabelMap``,
PASCAL-in-Detail JSON with COCO RLE strings, and ADE20K ``*_seg.png`` RGB encodings.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (256 entries)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save_jpeg(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=95)
    return path


def save_png_l(path: Path, label: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(label, dtype=np.uint8)).save(path, format="PNG")
    return path


def save_png_palette(path: Path, label: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(label, dtype=np.uint8))
    im.putpalette(voc_palette())
    assert im.mode == "P"
    im.save(path, format="PNG")
    return path


def save_tiff_u16(path: Path, label: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(label, dtype=np.uint16)).save(path, format="TIFF")
    return path


def save_mat_labelmap(path: Path, label_map: np.ndarray) -> Path:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"LabelMap": np.asarray(label_map, dtype=np.uint16)})
    return path


def save_ade_seg_png(path: Path, class_ids: np.ndarray) -> Path:
    """Encode ADE full object class ids as ``*_seg.png``: R = (id // 256) * 10, G = id % 256, B = instance."""
    ids = np.asarray(class_ids, dtype=np.int64)
    rgb = np.stack([(ids // 256) * 10, ids % 256, np.full_like(ids, 7)], -1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="PNG")
    return path


def save_ade_index(path: Path, folders: list[str], filenames: list[str]) -> Path:
    index = {
        "folder": folders,
        "filename": filenames,
        "objectnames": np.array(["-", "wall"], dtype=object),
        "objectPresence": np.zeros((2, len(filenames)), dtype=np.uint8),
    }
    with open(path, "wb") as f:
        pickle.dump(index, f)
    return path


def save_detail_json(path: Path, images: list[dict], annotations: list[dict]) -> Path:
    cats = [{"category_id": i, "name": f"c{i}"} for i in range(1, 460)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annos_segmentation": annotations, "categories": cats}))
    return path


def write_pairs(
    image_dir: Path,
    label_dir: Path,
    labels: dict[str, np.ndarray],
    *,
    label_format: str = "png",
    extra_images: int = 0,
) -> None:
    """Write ``<stem>.jpg`` images and labels (``png`` L, ``palette`` or ``tif`` uint16) for each stem."""
    for i, (stem, label) in enumerate(labels.items()):
        h, w = label.shape
        save_jpeg(image_dir / f"{stem}.jpg", random_image(h, w, seed=i))
        if label_format == "tif":
            save_tiff_u16(label_dir / f"{stem}.tif", label)
        elif label_format == "palette":
            save_png_palette(label_dir / f"{stem}.png", label)
        else:
            save_png_l(label_dir / f"{stem}.png", label)
    for j in range(extra_images):
        save_jpeg(image_dir / f"extra_{j:03d}.jpg", random_image(8, 8, seed=100 + j))


def block_label(h: int, w: int, values: list[int], ignore: int | None = None) -> np.ndarray:
    """Vertical stripes cycling through ``values``, with an ignore border when ``ignore`` is given."""
    cols = np.arange(w) * len(values) // w
    label = np.asarray(values, dtype=np.int64)[cols][None, :].repeat(h, 0)
    if ignore is not None:
        label[0, :] = ignore
    return label
