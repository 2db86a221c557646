"""Optional outputs of the ``predict`` commands that feed other tools: class probabilities and COCO-style RLE.

* ``--save-probs npz``: ``<name>_probs.npz`` with ``probs`` (float16, ``(T, H, W)``) and ``class_names``;
* ``--save-probs png``: a folder ``<name>_probs/`` with one 8-bit PNG per class (probability x 255), named
  ``<index>_<class>.png``;
* ``--rle-json PATH``: one JSON file for the run: a record per image and class present with the class's mask in
  COCO's compressed run-length encoding (column-major counts as the pycocotools string; ``ovcore.data.prepare.rle``).

Everything is written image by image (the RLE file is streamed), so memory stays flat over any number of images.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import numpy as np

__all__ = ["PROBS_FORMATS", "RleJsonWriter", "class_file_name", "save_probs"]

PROBS_FORMATS = ("none", "npz", "png")
"""The values of ``--save-probs``."""


def class_file_name(index: int, name: str, num_classes: int) -> str:
    """``<index>_<name>.png``: the index zero-padded to sort in class order, the name's first synonym reduced to
    letters, digits, ``-`` and ``_`` (spaces and anything else become ``_``)."""
    first = name.split(",")[0].split("|")[0].strip()
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", first).strip("_") or "class"
    return f"{index:0{len(str(max(num_classes - 1, 0)))}d}_{safe}.png"


def save_probs(out_dir: Path, stem: str, probs: np.ndarray, names: list[str], fmt: str) -> str:
    """Write one image's ``(T, H, W)`` class probabilities as ``fmt`` (``npz`` or ``png``); returns the path.

    Raises:
        ValueError: an unknown format, or ``probs`` not ``(len(names), H, W)``.
    """
    if probs.ndim != 3 or probs.shape[0] != len(names):
        raise ValueError(f"probabilities must be ({len(names)}, H, W) for {len(names)} classes, got {probs.shape}")
    if fmt == "npz":
        path = out_dir / f"{stem}_probs.npz"
        # Uncompressed: float16 probabilities barely compress, and zlib would dominate the time per image.
        np.savez(path, probs=probs.astype(np.float16), class_names=np.array(names))
        return str(path)
    if fmt == "png":
        return str(_save_prob_pngs(out_dir / f"{stem}_probs", probs, names))
    raise ValueError(f"--save-probs must be one of {', '.join(PROBS_FORMATS)}, got {fmt!r}")


def _save_prob_pngs(folder: Path, probs: np.ndarray, names: list[str]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    # Scores outside 0..1 (a method returning logits) are clipped: a PNG holds 0..255.
    grey = np.rint(np.clip(probs.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    for index, name in enumerate(names):
        Image.fromarray(grey[index]).save(folder / class_file_name(index, name, len(names)), format="PNG")
    return folder


class RleJsonWriter:
    """Streams COCO-style RLE records of label maps into one JSON file, image by image.

    The file is ``{"info": ..., "categories": [{"id", "name"}], "annotations": [...], "images": [...]}``; each
    annotation is ``{"id", "image_id", "image", "category_id", "category_name", "segmentation": {"size": [H, W],
    "counts": str}, "area"}``. It is written to a temporary file and renamed when closed, so a crash never leaves
    a truncated JSON under ``path``. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike, class_names: list[str], info: dict[str, Any] | None = None) -> None:
        from ovcore.files import temporary_path

        self.path = Path(path)
        self.names = list(class_names)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temporary_path(self.path)
        self._file: TextIO | None = open(self._tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._images: list[dict[str, Any]] = []  # small: name and size per image
        self._next_id = 1
        categories = [{"id": i, "name": n} for i, n in enumerate(self.names)]
        head = {"info": info or {}, "categories": categories}
        self._file.write(json.dumps(head)[:-1] + ', "annotations": [')

    def add(self, stem: str, labels: np.ndarray) -> int:
        """Append the records of one label map ``(H, W)``; returns how many classes it holds."""
        from ovcore.data.prepare.rle import label_map_rles

        if self._file is None:
            raise RuntimeError(f"{self.path}: the RLE writer is closed")
        image_id = len(self._images)
        self._images.append({"id": image_id, "name": stem, "height": int(labels.shape[0]),
                             "width": int(labels.shape[1])})
        rles = label_map_rles(labels)
        for class_id, rle, area in rles:
            record = {"id": self._next_id, "image_id": image_id, "image": stem, "category_id": class_id,
                      "category_name": self.names[class_id], "segmentation": rle, "area": area}
            self._file.write(("\n" if self._next_id == 1 else ",\n") + json.dumps(record))
            self._next_id += 1
        return len(rles)

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._file is not None:
            self._file.write('\n], "images": ' + json.dumps(self._images) + "}\n")
            self._file.close()
            self._file = None
            os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Drop the unfinished file (after an error)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> RleJsonWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
