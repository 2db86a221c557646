"""COCO run-length encoding (the compressed string format of pycocotools ``maskApi.c``), in numpy.

The PASCAL-in-Detail annotation file ``trainval_merged.json`` stores its segmentation masks this way, and the
``predict`` commands' ``--rle-json`` writes label maps this way so that COCO tools read them; pycocotools is not a
dependency, so the small codec is reimplemented here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rle_decode", "rle_encode", "counts_from_string", "counts_to_string", "label_map_rles"]


def counts_from_string(s: str | bytes) -> list[int]:
    """Decode pycocotools' LEB128-like string (``rleFrString``) into run lengths."""
    data = s.encode("ascii") if isinstance(s, str) else s
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)  # sign-extend negative deltas
        if len(counts) > 2:
            x += counts[-2]  # counts after the third are stored as differences to two runs earlier
        counts.append(x)
    return counts


def counts_to_string(counts: list[int]) -> str:
    """Encode run lengths as pycocotools' string (``rleToString``)."""
    out = bytearray()
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def rle_decode(rle: dict) -> np.ndarray:
    """Decode ``{"size": [h, w], "counts": str | list[int]}`` to a bool mask (h, w).

    Runs alternate background/foreground starting with background, in column-major (Fortran) order.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    counts = counts_from_string(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]
    if sum(counts) != h * w:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {h}x{w}={h * w}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(w, h).T


def rle_encode(mask: np.ndarray) -> dict:
    """Encode a bool mask (h, w) as ``{"size": [h, w], "counts": str}`` (pycocotools' compressed form)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    flat = mask.T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [h, w], "counts": counts_to_string(counts)}


def label_map_rles(labels: np.ndarray) -> list[tuple[int, dict, int]]:
    """Every class present in a label map as ``(class id, compressed RLE, pixel count)``, by class id.

    One pass over the map finds its runs (column-major, like :func:`rle_encode`), so a map with many classes costs
    no more than one with a few; each class's RLE equals ``rle_encode(labels == class_id)``.

    Raises:
        ValueError: ``labels`` is not 2-D.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be 2-D (H, W), got shape {labels.shape}")
    h, w = labels.shape
    flat = labels.T.reshape(-1)
    if flat.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    ends = np.append(starts[1:], flat.size)
    values = flat[starts]
    out = []
    # Runs grouped by class with one stable sort (each group keeps its runs in order), not one scan per class.
    order = np.argsort(values, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(values[order])) + 1):
        class_id, s, e = values[group[0]], starts[group], ends[group]
        gaps = s - np.concatenate([[0], e[:-1]])  # background before each run (only the first can be 0)
        counts = np.stack([gaps, e - s], 1).reshape(-1).tolist()
        if e[-1] < flat.size:
            counts.append(int(flat.size - e[-1]))
        out.append((int(class_id), {"size": [h, w], "counts": counts_to_string(counts)}, int((e - s).sum())))
    return out
