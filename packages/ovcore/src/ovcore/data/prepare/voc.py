"""PASCAL VOC 2012 preparation for PAS-20, PAS-20b and the VOC zero-shot split (sed-official.md §9.2).

Raw: ``VOCdevkit/VOC2012/`` with ``JPEGImages``, ``ImageSets/Segmentation/{train,val}.txt`` (and optionally
``aug.txt``, the SBD augmented ids of mmseg's ``voc_aug`` conversion) and the label folders
``SegmentationClass`` (palette PNGs) and/or ``SegmentationClassAug`` (grey PNGs; SBD conversion, 10582 train
images). Raw values: 0 background, 1..20 classes, 255 void.

Outputs, same basename as the image:

* ``annotations_detectron2/<split>/*.png``: 0 -> 255, k -> k-1, 255 stays (PAS-20, ``voc_zs``).
* ``annotations_detectron2_bg/<split>/*.png``: 0 -> 20, k -> k-1, 255 stays (PAS-20b).

The label of an id is read from the first of ``SegmentationClassAug``/``SegmentationClass`` that has it for
``val`` (SED reads SegmentationClassAug, whose val masks are VOC's own) and from ``SegmentationClass`` then
``SegmentationClassAug`` for ``train`` (mmseg: VOC masks for train.txt, SBD masks for aug.txt). As in SED, a
``val`` mask that becomes all-255 is not written (PAS-20 only); training masks are all written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ovcore.data.io import read_label, write_label
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

__all__ = ["prepare_voc", "voc_lut"]

logger = logging.getLogger(__name__)

_HOW = (
    "download VOCtrainval_11-May-2012.tar (http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar)"
    " and extract it into the dataset root; for the 10582-image training set also unzip SegmentationClassAug.zip "
    "into VOCdevkit/VOC2012/ and put aug.txt in ImageSets/Segmentation/"
)
_LABEL_DIRS = {
    "val": ("SegmentationClassAug", "SegmentationClass"),
    "train": ("SegmentationClass", "SegmentationClassAug"),
}
_ID_LISTS = {"val": ("val.txt",), "train": ("train.txt", "aug.txt")}


def voc_lut(background: int) -> np.ndarray:
    """256-entry table: 0 -> ``background``, 1..20 -> 0..19, 255 -> 255; other values map to -1 (invalid)."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[0] = background
    lut[1:21] = np.arange(20)
    lut[255] = 255
    return lut


def _convert(job: Job) -> str:
    raw = read_label(job.inputs[0])
    if raw.min() < 0 or raw.max() > 255:
        raise ValueError(f"{job.inputs[0]}: values {raw.min()}..{raw.max()} are not VOC ids")
    statuses = []
    for out, background in zip(job.outputs, (255, 20), strict=True):
        label = voc_lut(background)[raw]
        if (label < 0).any():
            bad = np.unique(raw[label < 0])[:10].tolist()
            raise ValueError(f"{job.inputs[0]}: unexpected VOC label values {bad} (expected 0..20 and 255)")
        if job.params["drop_empty"] and (label == 255).all():
            statuses.append("dropped")
            continue
        write_label(out, label.astype(np.uint8))
        statuses.append("written")
    # "dropped" = not written to the PAS-20 folder (all ignore); the PAS-20b mask may still be written.
    return statuses[0]


def _split_jobs(voc: Path, sets: Path, splits: Sequence[str]) -> Iterator[SplitJobs]:
    for split in splits:
        ids: list[str] = []
        for i, list_name in enumerate(_ID_LISTS[split]):
            path = sets / list_name
            if i == 0:
                require_file(path, f"VOC {split} id list", _HOW)
            elif not path.is_file():
                logger.warning("%s not found: training on %s only (%d ids)", path, _ID_LISTS[split][0], len(ids))
                continue
            ids += read_id_list(path)
        ids = list(dict.fromkeys(ids))
        jobs, missing = [], []
        for image_id in ids:
            src = next(
                (voc / d / f"{image_id}.png" for d in _LABEL_DIRS[split] if (voc / d / f"{image_id}.png").is_file()),
                None,
            )
            if src is None:
                missing.append(image_id)
                continue
            outputs = (
                voc / "annotations_detectron2" / split / f"{image_id}.png",
                voc / "annotations_detectron2_bg" / split / f"{image_id}.png",
            )
            jobs.append(Job((src,), outputs, {"drop_empty": split == "val"}))
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(ids)} VOC {split} ids have no label in {' or '.join(_LABEL_DIRS[split])} "
                f"(e.g. {', '.join(missing[:3])}); {_HOW}"
            )
        yield SplitJobs(
            split, jobs, (voc / "annotations_detectron2" / split, voc / "annotations_detectron2_bg" / split)
        )


def prepare_voc(
    root: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("val",),
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``VOCdevkit/VOC2012/annotations_detectron2{,_bg}/<split>``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: ``"val"`` (default; PAS-20/PAS-20b evaluation) and/or ``"train"`` (train.txt + aug.txt).
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    voc = require_dir(resolve_root(root) / "VOCdevkit" / "VOC2012", "PASCAL VOC 2012", _HOW)
    sets = require_dir(voc / "ImageSets" / "Segmentation", "VOC segmentation id lists", _HOW)
    chosen = check_splits(splits, ["train", "val"], "ovcore prepare voc")
    label_roots = [voc / d for d in ("SegmentationClass", "SegmentationClassAug") if (voc / d).is_dir()]
    if not label_roots:
        raise FileNotFoundError(
            f"VOC labels not found: neither {voc}/SegmentationClass nor SegmentationClassAug; {_HOW}"
        )
    work = _split_jobs(voc, sets, chosen)
    return convert_splits("voc", _convert, work, overwrite=overwrite, workers=workers, progress=progress)
