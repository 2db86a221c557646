"""PASCAL Context 59 and 459 preparation (as official SED ``datasets/prepare_pascal_context_59.py`` /
``prepare_pascal_context_459.py``).

PC-59 raw: ``VOCdevkit/VOC2010/trainval_merged.json`` (PASCAL in Detail): ``images`` (``file_name``,
``image_id``, ``phase``, ``height``, ``width``) and ``annos_segmentation`` (``image_id``, ``category_id``,
``segmentation`` as COCO RLE). Each image's masks are painted in file order with their category id; the 59
PC-459 ids of :data:`PC59_IDS` become 0..58 in ascending order and everything else (0 and the other ids) 255.
Output ``VOC2010/annotations_detectron2/pc59_<split>/<stem>.png`` (uint8). The official script writes ``val``
(5105 images with ``phase == "val"``); ``--splits train`` adds the 4996 training images (zero-shot training).

PC-459 raw: ``VOC2010/trainval/<id>.mat`` (``LabelMap``, 1..459) for the ids in ``VOC2010/pascalcontext_val.txt``
(5104 ids, shipped with SED/CAT-Seg; when absent, the ``phase == "val"`` images of ``trainval_merged.json`` are
used). Output ``VOC2010/annotations_detectron2/pc459_val/<id>.tif``: ``LabelMap - 1`` as uint16. A 0 in
``LabelMap`` (not expected: the official script asserts it never happens) becomes the ignore value 459 instead of
wrapping around.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ovcore.data.io import write_label
from ovcore.data.prepare._common import (
    Job,
    PrepareReport,
    SplitJobs,
    check_splits,
    convert_splits,
    read_id_list,
    require_dir,
    require_file,
    resolve_root,
)
from ovcore.data.prepare.rle import rle_decode

__all__ = ["prepare_pascal_context_59", "prepare_pascal_context_459", "PC59_IDS", "pc59_lut", "paint_detail_mask"]

logger = logging.getLogger(__name__)

# PC-459 ids (1-based, labels.txt order) of the 59 classes, ascending -> train ids 0..58.
PC59_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115, 144, 158, 159,
    162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355, 360, 366, 368,
    397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip
PC459_IGNORE = 459

_VOC2010_HOW = (
    "download VOCtrainval_03-May-2010.tar (http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar)"
    " and extract it into the dataset root"
)
_DETAIL_HOW = (
    "download trainval_merged.json (PASCAL in Detail, https://sites.google.com/view/pasd/dataset, or "
    "https://codalabuser.blob.core.windows.net/public/trainval_merged.json) into VOCdevkit/VOC2010/"
)
_MAT_HOW = (
    "download trainval.tar.gz of PASCAL-Context (https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz) "
    "and extract it into VOCdevkit/VOC2010/ (giving VOC2010/trainval/*.mat)"
)


@functools.lru_cache(maxsize=1)
def pc59_lut() -> np.ndarray:
    """Lookup table PC-459 id (0..65535) -> PC-59 train id (0..58), everything else 255."""
    lut = np.full(1 << 16, 255, dtype=np.uint8)
    lut[list(PC59_IDS)] = np.arange(59, dtype=np.uint8)
    return lut


def paint_detail_mask(height: int, width: int, annotations: Sequence[dict]) -> np.ndarray:
    """Paint Detail ``annos_segmentation`` entries of one image, in order, into an int64 id map (0 = none)."""
    out = np.zeros((height, width), dtype=np.int64)
    for anno in annotations:
        seg = anno["segmentation"]
        if isinstance(seg, dict):
            mask = rle_decode(seg)
        else:  # polygons [[x0, y0, x1, y1, ...], ...]
            from PIL import Image, ImageDraw

            canvas = Image.new("L", (width, height), 0)
            for poly in seg:
                ImageDraw.Draw(canvas).polygon([float(v) for v in poly], fill=1, outline=1)
            mask = np.asarray(canvas).astype(bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask of image {anno.get('image_id')} is {mask.shape}, image is {(height, width)}")
        out[mask] = int(anno["category_id"])
    return out


def _convert_59(job: Job) -> str:
    ids = paint_detail_mask(job.params["height"], job.params["width"], job.params["annotations"])
    write_label(job.outputs[0], pc59_lut()[ids])
    return "written"


def _load_detail(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            detail = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    for key in ("images", "annos_segmentation"):
        if key not in detail:
            raise ValueError(f"{path} has no {key!r} list; is it PASCAL in Detail's trainval_merged.json?")
    return detail


def _split_jobs_59(voc: Path, detail: dict, splits: Sequence[str]) -> Iterator[SplitJobs]:
    by_image: dict[int, list[dict]] = defaultdict(list)
    for anno in detail["annos_segmentation"]:
        by_image[anno["image_id"]].append(anno)
    for split in splits:
        dst = voc / "annotations_detectron2" / f"pc59_{split}"
        jobs = [
            Job(
                (),
                (dst / (Path(img["file_name"]).stem + ".png"),),
                {
                    "height": int(img["height"]),
                    "width": int(img["width"]),
                    "annotations": by_image.get(img["image_id"], []),
                },
            )
            for img in detail["images"]
            if img.get("phase") == split
        ]
        if not jobs:
            raise ValueError(f"{voc / 'trainval_merged.json'} has no image with phase {split!r}")
        yield SplitJobs(split, jobs, (dst,))


def prepare_pascal_context_59(
    root: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("val",),
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``VOCdevkit/VOC2010/annotations_detectron2/pc59_{val,train}``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: ``"val"`` (default) and/or ``"train"``.
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    voc = require_dir(resolve_root(root) / "VOCdevkit" / "VOC2010", "PASCAL VOC 2010", _VOC2010_HOW)
    chosen = check_splits(splits, ["train", "val"], "ovcore prepare pascal_context_59")
    detail = _load_detail(require_file(voc / "trainval_merged.json", "PASCAL in Detail annotations", _DETAIL_HOW))
    work = _split_jobs_59(voc, detail, chosen)
    return convert_splits(
        "pascal_context_59", _convert_59, work, overwrite=overwrite, workers=workers, progress=progress
    )


def _convert_459(job: Job) -> str:
    import scipy.io

    path = job.inputs[0]
    try:
        label_map = scipy.io.loadmat(str(path))["LabelMap"]
    except (OSError, ValueError, KeyError, NotImplementedError) as e:
        raise ValueError(f"cannot read LabelMap from {path}: {e}") from e
    label = np.asarray(label_map).astype(np.int64) - 1
    if label.max() > 458:
        raise ValueError(f"{path}: LabelMap values up to {label.max() + 1} exceed 459")
    label[label < 0] = PC459_IGNORE
    write_label(job.outputs[0], label, dtype=np.uint16)
    return "written"


def _val_ids_459(voc: Path) -> list[str]:
    id_file = voc / "pascalcontext_val.txt"
    if id_file.is_file():
        return read_id_list(id_file)
    detail_path = voc / "trainval_merged.json"
    if detail_path.is_file():
        logger.warning("%s not found: using the phase=='val' images of %s instead", id_file, detail_path)
        return [Path(img["file_name"]).stem for img in _load_detail(detail_path)["images"] if img.get("phase") == "val"]
    raise FileNotFoundError(
        f"validation id list not found: {id_file} is missing (copy SED's datasets/pascalcontext_val.txt there), "
        f"and there is no {detail_path} to derive it from"
    )


def prepare_pascal_context_459(
    root: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``VOCdevkit/VOC2010/annotations_detectron2/pc459_val`` (uint16 TIFF).

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    voc = require_dir(resolve_root(root) / "VOCdevkit" / "VOC2010", "PASCAL VOC 2010", _VOC2010_HOW)
    mats = require_dir(voc / "trainval", "PASCAL-Context .mat labels", _MAT_HOW)
    dst = voc / "annotations_detectron2" / "pc459_val"
    ids = _val_ids_459(voc)
    missing = [i for i in ids if not (mats / f"{i}.mat").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(ids)} validation ids have no .mat in {mats} (e.g. {', '.join(missing[:3])}); "
            f"{_MAT_HOW}"
        )
    work = [SplitJobs("val", [Job((mats / f"{i}.mat",), (dst / f"{i}.tif",)) for i in ids], (dst,))]
    return convert_splits(
        "pascal_context_459", _convert_459, work, overwrite=overwrite, workers=workers, progress=progress
    )
