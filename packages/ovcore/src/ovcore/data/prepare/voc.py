"""PASCAL VOC 2012 preparation for PAS-20, PAS-20b and the VOC zero-shot split (as official SED
``datasets/prepare_voc.py``).

Raw: ``VOCdevkit/VOC2012/`` with ``JPEGImages``, ``ImageSets/Segmentation/{train,val}.txt`` (and optionally
``aug.txt``, the SBD augmented ids of mmseg's ``voc_aug`` conversion) and the label folders
``SegmentationClass`` (palette PNGs) and/or ``SegmentationClassAug`` (grey PNGs; SBD conversion, 10582 train
images). Raw values: 0 background, 1..20 classes, 255 void.

Outputs, same basename as the image:

* ``annotations_detectron2/<split>/*.png``: 0 -> 255, k -> k-1, 255 stays (PAS-20, ``voc_zs``).
* ``annotations_detectron2_bg/<split>/*.png``: 0 -> 20, k -> k-1, 255 stays (PAS-20b).

Training set (``train_set``): ``"aug"`` (default) is the 10,582 images of ``train.txt`` + ``aug.txt`` that every
zero-shot VOC paper trains on (SBD-augmented, mmseg's ``voc_aug``); it needs ``aug.txt`` and
``SegmentationClassAug`` and is an error without them. ``"train"`` prepares only the 1,464 images of ``train.txt``
(VOC's own masks), on explicit request.

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

__all__ = ["VOC_AUG_TRAIN_IMAGES", "VOC_TRAIN_SETS", "prepare_voc", "voc_lut"]

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
VOC_TRAIN_SETS: dict[str, tuple[str, ...]] = {"aug": ("train.txt", "aug.txt"), "train": ("train.txt",)}
"""Id lists of each ``train_set``: the 10,582-image SBD-augmented set (default) or VOC's own 1,464 images."""

VOC_AUG_TRAIN_IMAGES = 10582
"""Images of train.txt + aug.txt (mmseg's voc_aug; the training set of ZegCLIP, CLIP-ZSS and the other papers)."""

_AUG_HOW = (
    "the 10,582-image training set needs VOCdevkit/VOC2012/SegmentationClassAug/ (SBD masks converted to grey PNGs, "
    "e.g. SegmentationClassAug.zip or mmseg's tools/dataset_converters/voc_aug.py on SBD's benchmark.tgz) and "
    "ImageSets/Segmentation/aug.txt (the SBD ids outside VOC val; voc_aug.py writes it); to prepare only the 1,464 "
    "images of train.txt instead, pass --train-set train (not the papers' training set)"
)


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


def _check_aug_inputs(voc: Path, sets: Path) -> None:
    """The 10,582-image training set's inputs exist (an error otherwise, never a quietly smaller set)."""
    require_file(sets / "aug.txt", "VOC aug id list (train_set 'aug')", _AUG_HOW)
    if not (voc / "SegmentationClassAug").is_dir():
        raise FileNotFoundError(f"VOC SBD masks not found: {voc / 'SegmentationClassAug'} is missing; {_AUG_HOW}")


def _split_ids(sets: Path, split: str, train_set: str) -> list[str]:
    """The ids of a split: val.txt, or the id lists of ``train_set`` (duplicates dropped, order kept)."""
    lists = VOC_TRAIN_SETS[train_set] if split == "train" else ("val.txt",)
    ids: list[str] = []
    for list_name in lists:
        ids += read_id_list(require_file(sets / list_name, f"VOC {split} id list", _HOW))
    ids = list(dict.fromkeys(ids))
    if split == "train" and train_set == "aug" and len(ids) != VOC_AUG_TRAIN_IMAGES:
        logger.warning(
            "train.txt + aug.txt hold %d distinct ids, not the %d of the papers' training set",
            len(ids),
            VOC_AUG_TRAIN_IMAGES,
        )
    if split == "train" and train_set == "train":
        logger.warning(
            "preparing VOC's own train.txt (%d images, --train-set train): the papers train on the %d-image "
            "train.txt + aug.txt set",
            len(ids),
            VOC_AUG_TRAIN_IMAGES,
        )
    return ids


def _split_jobs(voc: Path, sets: Path, splits: Sequence[str], train_set: str) -> Iterator[SplitJobs]:
    for split in splits:
        ids = _split_ids(sets, split, train_set)
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
    train_set: str = "aug",
) -> PrepareReport:
    """Write ``VOCdevkit/VOC2012/annotations_detectron2{,_bg}/<split>``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: ``"val"`` (default; PAS-20/PAS-20b evaluation) and/or ``"train"`` (zero-shot training).
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
        train_set: ``"aug"``: train.txt + aug.txt, the 10,582 images the papers train on (needs aug.txt and
            SegmentationClassAug); ``"train"``: only the 1,464 images of train.txt.

    Raises:
        ValueError: unknown split or train set.
        FileNotFoundError: missing inputs; for the "aug" training set, a missing aug.txt or SegmentationClassAug.
    """
    if train_set not in VOC_TRAIN_SETS:
        raise ValueError(
            f"ovcore prepare voc: unknown --train-set {train_set!r}; choose from {', '.join(VOC_TRAIN_SETS)}"
        )
    voc = require_dir(resolve_root(root) / "VOCdevkit" / "VOC2012", "PASCAL VOC 2012", _HOW)
    sets = require_dir(voc / "ImageSets" / "Segmentation", "VOC segmentation id lists", _HOW)
    chosen = check_splits(splits, ["train", "val"], "ovcore prepare voc")
    if "train" in chosen and train_set == "aug":
        _check_aug_inputs(voc, sets)
    label_roots = [voc / d for d in ("SegmentationClass", "SegmentationClassAug") if (voc / d).is_dir()]
    if not label_roots:
        raise FileNotFoundError(
            f"VOC labels not found: neither {voc}/SegmentationClass nor SegmentationClassAug; {_HOW}"
        )
    work = _split_jobs(voc, sets, chosen, train_set)
    return convert_splits("voc", _convert, work, overwrite=overwrite, workers=workers, progress=progress)
