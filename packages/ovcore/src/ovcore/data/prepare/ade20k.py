"""ADE20K-150 (SceneParsing) and ADE20K-847 (ADE20K_2021_17_01 full) preparation (as official SED
``datasets/prepare_ade20k_150.py`` / ``prepare_ade20k_full.py``).

ADE20K-150 raw: ``ADEChallengeData2016/annotations/{training,validation}/*.png`` (0 = other, 1..150).
Output ``ADEChallengeData2016/annotations_detectron2/<split>/*.png``: ``label - 1`` in uint8, so 0 wraps to 255.

ADE20K-847 raw: ``ADE20K_2021_17_01/index_ade20k.pkl`` (lists ``folder`` and ``filename``; paths relative to the
dataset root) and per image ``<name>.jpg`` + ``<name>_seg.png``. The object class of a pixel is
``(R / 10) * 256 + G`` of ``_seg.png``; the 847 ADE ids of ``ade847_full_ids.json`` become train ids 0..846 and
everything else 65535. Images whose shorter side exceeds 512 are resized to a 512 shorter side (bilinear image,
nearest label, as the official script with cv2) and every image is re-saved as JPEG (PIL default quality).
Outputs: ``ADE20K_2021_17_01/images_detectron2/<split>/*.jpg`` and ``annotations_detectron2/<split>/*.tif``
(uint16). The official script converts validation only (what A-847 evaluates); ``--splits train`` adds training.
Without the pickle, images are found by globbing ``images/ADE/{training,validation}/**/*.jpg``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ovcore.data._resources import ade847_full_ids
from ovcore.data.io import read_image, read_label, write_image, write_label
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
from ovcore.data.transforms.functional import resize_image_bilinear, resize_label_nearest
from ovcore.safe_load import load_pickle_file

__all__ = ["prepare_ade20k_150", "prepare_ade20k_847", "ade847_lut", "ade_full_class_mask"]

logger = logging.getLogger(__name__)

_FOLDERS = {"train": "training", "val": "validation"}  # split -> folder name, in both datasets
_ADE150_HOW = (
    "download ADEChallengeData2016.zip (http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip) "
    "and unzip it into the dataset root"
)
_ADE847_HOW = (
    "download ADE20K_2021_17_01.zip from https://ade20k.csail.mit.edu/ (registration required) and unzip it into "
    "the dataset root"
)
_MAX_SHORT = 512


# ------------------------------------------------------------------------------------------------ ADE20K-150
def _convert_150(job: Job) -> str:
    raw = read_label(job.inputs[0])
    if raw.min() < 0 or raw.max() > 150:
        raise ValueError(f"{job.inputs[0]}: values {raw.min()}..{raw.max()} are not ADE20K-150 ids 0..150")
    write_label(job.outputs[0], ((raw - 1) & 0xFF).astype(np.uint8))
    return "written"


def _split_jobs_150(base: Path, splits: Sequence[str]) -> Iterator[SplitJobs]:
    for split in splits:
        folder = _FOLDERS[split]
        src = require_dir(base / "annotations" / folder, f"raw ADE20K-150 {folder} annotations", _ADE150_HOW)
        dst = base / "annotations_detectron2" / folder
        yield SplitJobs(folder, label_jobs(src, dst, _ADE150_HOW), (dst,))


def prepare_ade20k_150(
    root: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("train", "val"),
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``ADEChallengeData2016/annotations_detectron2/{training,validation}``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: any of ``"train"``, ``"val"``.
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    base = resolve_root(root) / "ADEChallengeData2016"
    chosen = check_splits(splits, list(_FOLDERS), "ovcore prepare ade20k_150")
    work = _split_jobs_150(base, chosen)
    return convert_splits("ade20k_150", _convert_150, work, overwrite=overwrite, workers=workers, progress=progress)


# ------------------------------------------------------------------------------------------------ ADE20K-847
@functools.lru_cache(maxsize=1)
def ade847_lut() -> np.ndarray:
    """Lookup table over ADE full object ids (0..65535) -> train id 0..846, everything else 65535."""
    lut = np.full(1 << 16, 65535, dtype=np.uint16)
    for entry in ade847_full_ids():
        lut[int(entry["ade_id"])] = int(entry["trainId"])
    return lut


def ade_full_class_mask(seg_rgb: np.ndarray) -> np.ndarray:
    """Object class ids of an ADE20K full ``*_seg.png`` (H, W, 3): ``(R / 10) * 256 + G`` (int64)."""
    r = seg_rgb[..., 0].astype(np.int64)
    g = seg_rgb[..., 1].astype(np.int64)
    return (r // 10) * 256 + g


def _shorter_side_512(h: int, w: int) -> tuple[int, int] | None:
    # The official rule (round() is Python's banker's rounding, as in the original script).
    if w >= h > _MAX_SHORT:
        return _MAX_SHORT, round(w / float(h) * _MAX_SHORT)
    if h >= w > _MAX_SHORT:
        return round(h / float(w) * _MAX_SHORT), _MAX_SHORT
    return None


def _read_seg_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise ValueError(f"expected an RGB *_seg.png, got mode {im.mode}")
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read ADE20K segmentation {path}: {e}") from e


def _convert_847(job: Job) -> str:
    image_path, seg_path = job.inputs
    image = read_image(image_path, apply_exif=False)  # the official script reads raw pixels (PIL, no EXIF)
    classes = torch.from_numpy(ade_full_class_mask(_read_seg_png(seg_path)))
    if tuple(classes.shape) != tuple(image.shape[1:]):
        raise ValueError(f"{seg_path} is {tuple(classes.shape)} but {image_path} is {tuple(image.shape[1:])}")
    size = _shorter_side_512(*image.shape[1:])
    if size is not None:
        image = resize_image_bilinear(image, size)
        classes = resize_label_nearest(classes, size, backend="opencv")  # the official script uses cv2
    write_image(job.outputs[0], image)
    write_label(job.outputs[1], ade847_lut()[classes.numpy()], dtype=np.uint16)
    return "written"


def _index_entries(base: Path, root: Path) -> list[tuple[Path, str]]:
    """``(image_path, file_name)`` of every image, from ``index_ade20k.pkl`` or by globbing."""
    index_path = base / "index_ade20k.pkl"
    if index_path.is_file():
        # The official index is a pickle of lists and numpy arrays: read it without admitting any other object.
        index = load_pickle_file(index_path, what="ADE20K index")
        if not isinstance(index, dict) or "folder" not in index or "filename" not in index:
            raise ValueError(f"{index_path} has no 'folder'/'filename' lists; is it the ADE20K_2021_17_01 index?")
        entries = []
        for folder, name in zip(index["folder"], index["filename"], strict=True):
            path = root / str(folder) / str(name)
            if not path.is_file() and (base / str(folder) / str(name)).is_file():
                path = base / str(folder) / str(name)
            entries.append((path, str(name)))
        return entries
    logger.warning("%s not found: globbing images/ADE/{training,validation}/**/*.jpg instead", index_path)
    images = require_dir(base / "images" / "ADE", "ADE20K_2021_17_01 images", _ADE847_HOW)
    return [(p, p.name) for p in sorted(images.glob("*/**/*.jpg"))]


def _jobs_847(base: Path, root: Path, splits: Sequence[str]) -> dict[str, list[Job]]:
    """The jobs of each chosen split; a FileNotFoundError when an indexed image or its ``_seg.png`` is missing."""
    jobs: dict[str, list[Job]] = {"train": [], "val": []}
    missing: list[Path] = []
    for image_path, name in _index_entries(base, root):
        # The official split test: the second "_" field of the file name ("ADE_val_0000xxxx.jpg").
        split = "val" if name.split("_")[1:2] == ["val"] else "train"
        if split not in splits:
            continue
        seg_path = image_path.with_name(Path(name).stem + "_seg.png")
        if not image_path.is_file() or not seg_path.is_file():
            missing.append(image_path if not image_path.is_file() else seg_path)
            continue
        folder = _FOLDERS[split]
        stem = Path(name).stem
        jobs[split].append(
            Job(
                (image_path, seg_path),
                (
                    base / "images_detectron2" / folder / f"{stem}.jpg",
                    base / "annotations_detectron2" / folder / f"{stem}.tif",
                ),
            )
        )
    if missing:
        examples = ", ".join(str(p) for p in missing[:3])
        raise FileNotFoundError(f"{len(missing)} indexed ADE20K files are missing (e.g. {examples}); {_ADE847_HOW}")
    return jobs


def _split_jobs_847(base: Path, jobs: dict[str, list[Job]], splits: Sequence[str]) -> Iterator[SplitJobs]:
    for split in splits:
        if not jobs[split]:
            raise FileNotFoundError(f"no ADE20K_2021_17_01 image of split {split!r} found under {base}")
        yield SplitJobs(split, jobs[split], (base / "annotations_detectron2" / _FOLDERS[split],))


def prepare_ade20k_847(
    root: str | os.PathLike | None = None,
    *,
    splits: Sequence[str] = ("val",),
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Write ``ADE20K_2021_17_01/{images,annotations}_detectron2/<split>``.

    Args:
        root: dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        splits: ``"val"`` (default, as the official script) and/or ``"train"``.
        overwrite: rewrite existing outputs.
        workers: worker processes (0: none).
        progress: show progress bars.
    """
    root_path = resolve_root(root)
    base = require_dir(root_path / "ADE20K_2021_17_01", "ADE20K_2021_17_01", _ADE847_HOW)
    chosen = check_splits(splits, ["train", "val"], "ovcore prepare ade20k_847")
    work = _split_jobs_847(base, _jobs_847(base, root_path, chosen), chosen)
    return convert_splits("ade20k_847", _convert_847, work, overwrite=overwrite, workers=workers, progress=progress)
