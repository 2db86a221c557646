"""COCO-Stuff 164k: ``stuffthingmaps_trainval2017`` PNGs -> 171 contiguous train ids (as official SED
``datasets/prepare_coco_stuff.py``).

Raw: ``coco-stuff/annotations/{train2017,val2017}/*.png`` hold 0-based COCO ids (0..181, 255 unlabeled).
The 80 thing ids (0..89 with gaps) and 91 stuff ids (91..181) in use become 0..170 in ascending order; every
other value becomes 255. Output: ``coco-stuff/annotations_detectron2/<split>/*.png`` (uint8), same basename.
Images stay in ``coco-stuff/images/<split>``.
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
    label_jobs,
    require_dir,
    resolve_root,
)

__all__ = ["prepare_coco_stuff", "coco_stuff_lut", "COCO_UNUSED_THING_IDS"]

# 0-based ids of the 11 COCO category slots without annotations (1-based 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91).
COCO_UNUSED_THING_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
logger = logging.getLogger(__name__)

_SPLITS = {"train": "train2017", "val": "val2017"}
_HOW = (
    "download stuffthingmaps_trainval2017.zip (http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/"
    "stuffthingmaps_trainval2017.zip) and unzip it into coco-stuff/annotations/"
)


def coco_stuff_lut() -> np.ndarray:
    """256-entry lookup table: raw 0-based COCO id -> train id 0..170, everything else 255."""
    used = [i for i in range(182) if i not in COCO_UNUSED_THING_IDS]  # 171 ids
    lut = np.full(256, 255, dtype=np.uint8)
    lut[used] = np.arange(171, dtype=np.uint8)
    return lut


def _convert(job: Job) -> str:
    raw = read_label(job.inputs[0])
    if raw.min() < 0 or raw.max() > 255:
        raise ValueError(f"{job.inputs[0]}: values {raw.min()}..{raw.max()} are not 8-bit COCO ids")
    write_label(job.outputs[0], coco_stuff_lut()[raw])
    return "written"


def _split_jobs(base: Path, splits: Sequence[str]) -> Iterator[SplitJobs]:
    for split in splits:
        folder = _SPLITS[split]
        src = require_dir(base / "annotations" / folder, f"raw COCO-Stuff {folder} annotations", _HOW)
        if not (base / "images" / folder).is_dir():
            # The labels can be converted without images, but the dataset cannot be read: say so early.
            logger.warning(
                "COCO images folder %s is missing: download http://images.cocodataset.org/zips/%s.zip",
                base / "images" / folder,
                folder,
            )
        dst = base / "annotations_detectron2" / folder
        yield SplitJobs(folder, label_jobs(src, dst, _HOW), (dst,))


def prepare_coco_stuff(
    root: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("train", "val"),
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``coco-stuff/annotations_detectron2/{train2017,val2017}``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: any of ``"train"``, ``"val"``.
        overwrite: rewrite existing outputs (otherwise they are skipped).
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    base = resolve_root(root) / "coco-stuff"
    chosen = check_splits(splits, list(_SPLITS), "ovcore prepare coco_stuff")
    work = _split_jobs(base, chosen)
    return convert_splits("coco_stuff", _convert, work, overwrite=overwrite, workers=workers, progress=progress)
