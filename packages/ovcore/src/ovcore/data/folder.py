"""A semantic-segmentation dataset read from an image folder and a label folder, paired by basename.

Pairing follows detectron2's ``load_sem_seg``: the dataset is the intersection of image and label basenames, so
the image folder may hold extra images (all of VOC's JPEGImages, say). Labels without an image, an empty
intersection, a missing folder, an unreadable file or a label value outside the class range raise errors that
name the folder or file and, where it helps, the ``ovcore prepare`` command that writes the prepared layout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ovcore.data.io import read_image, read_label

__all__ = ["SemSegFolder", "check_label_values", "pair_by_basename"]

logger = logging.getLogger(__name__)

Sample = dict[str, Any]


def _examples(names: list[str], k: int = 3) -> str:
    shown = ", ".join(sorted(names)[:k])
    return shown + (", ..." if len(names) > k else "")


def _list_files(folder: Path, ext: str) -> dict[str, Path]:
    ext = ext.lower()
    with os.scandir(folder) as it:
        return {
            entry.name[: -len(ext)]: Path(entry.path)
            for entry in it
            if entry.name.lower().endswith(ext) and not entry.name.startswith(".") and entry.is_file()
        }


def pair_by_basename(
    image_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    *,
    image_ext: str = ".jpg",
    label_ext: str = ".png",
    hint: str = "",
    allow_unpaired_labels: bool = False,
) -> list[tuple[Path, Path]]:
    """Pair ``image_dir/<stem><image_ext>`` with ``label_dir/<stem><label_ext>``, sorted by stem.

    Args:
        image_dir: folder of images (extra images are allowed and skipped).
        label_dir: folder of label maps.
        image_ext / label_ext: suffixes to pair.
        hint: appended to errors about the label folder (e.g. "it is written by `ovcore prepare voc`").
        allow_unpaired_labels: keep going (with a warning) when some labels have no image.

    Returns:
        ``[(image_path, label_path), ...]``.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: no pair, no label file, or labels without images.
    """
    image_dir, label_dir = Path(image_dir), Path(label_dir)
    suffix = f"; {hint}" if hint else ""
    if not label_dir.is_dir():
        raise FileNotFoundError(f"label folder {label_dir} does not exist{suffix}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist (labels are in {label_dir})")
    images = _list_files(image_dir, image_ext)
    labels = _list_files(label_dir, label_ext)
    if not labels:
        raise ValueError(f"label folder {label_dir} contains no *{label_ext} file{suffix}")
    common = sorted(images.keys() & labels.keys())
    if not common:
        raise ValueError(
            f"no image/label pair: files are paired by basename, but none of the {len(labels)} *{label_ext} "
            f"labels in {label_dir} (e.g. {_examples(list(labels))}) matches any of the {len(images)} "
            f"*{image_ext} images in {image_dir} (e.g. {_examples(list(images)) or 'none'})"
        )
    orphans = sorted(labels.keys() - images.keys())
    if orphans:
        message = (
            f"{len(orphans)} of {len(labels)} labels in {label_dir} have no *{image_ext} image in {image_dir} "
            f"(e.g. {_examples(orphans)}); {len(common)} pairs found"
        )
        if not allow_unpaired_labels:
            raise ValueError(message + "; is the image folder complete?")
        logger.warning(message)
    extra = len(images) - len(common)
    if extra:
        logger.debug("%d images in %s have no label and are skipped", extra, image_dir)
    return [(images[stem], labels[stem]) for stem in common]


def check_label_values(
    label: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int,
    *,
    path: str | os.PathLike = "",
    hint: str = "",
) -> None:
    """Raise ``ValueError`` when ``label`` holds a value outside ``0..num_classes-1`` other than ``ignore_index``."""
    array = label.numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    bad = ((array < 0) | (array >= num_classes)) & (array != ignore_index)
    if bad.any():
        values = np.unique(array[bad])
        shown = ", ".join(str(v) for v in values[:10]) + (", ..." if values.size > 10 else "")
        where = f"label file {path}" if path else "label map"
        raise ValueError(
            f"{where} has values outside the class range 0..{num_classes - 1} (ignore {ignore_index}): {shown}"
            + (f"; {hint}" if hint else "")
        )


class SemSegFolder(Dataset):
    """Images and label maps paired by basename; samples are ``{"image", "label", "name"}`` dicts.

    Args:
        image_dir: image folder.
        label_dir: label folder.
        num_classes: valid label ids are ``0..num_classes-1``.
        ignore_index: the ignored label value (kept as is in the sample).
        image_ext / label_ext: suffixes to pair.
        transform: callable applied to each sample dict.
        check_labels: check label values on every read.
        hint: how to produce the prepared layout, added to error messages.
        allow_unpaired_labels: see :func:`pair_by_basename`.
        class_names: names of the label ids, exposed as ``.class_names``.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike,
        label_dir: str | os.PathLike,
        *,
        num_classes: int,
        ignore_index: int = 255,
        image_ext: str = ".jpg",
        label_ext: str = ".png",
        transform: Callable[[Sample], Sample] | None = None,
        check_labels: bool = True,
        hint: str = "",
        allow_unpaired_labels: bool = False,
        class_names: list[str] | None = None,
    ) -> None:
        self.class_names = list(class_names) if class_names is not None else None
        self.image_dir, self.label_dir = Path(image_dir), Path(label_dir)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.transform = transform
        self.check_labels = check_labels
        self.hint = hint
        self.files = pair_by_basename(
            image_dir,
            label_dir,
            image_ext=image_ext,
            label_ext=label_ext,
            hint=hint,
            allow_unpaired_labels=allow_unpaired_labels,
        )

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Sample:
        """Read sample ``index`` without the transform."""
        image_path, label_path = self.files[index]
        image = read_image(image_path)
        label = read_label(label_path)
        if tuple(image.shape[1:]) != label.shape:
            # Some annotations follow the stored pixel layout of a photo with an EXIF rotation tag: when only the
            # un-rotated image fits the label, use it rather than stopping a whole run on one file.
            raw = read_image(image_path, apply_exif=False)
            if tuple(raw.shape[1:]) == label.shape:
                logger.warning("%s: EXIF orientation ignored, the label matches the stored pixel layout", image_path)
                image = raw
        if tuple(image.shape[1:]) != label.shape:
            raise ValueError(
                f"image {image_path} is {image.shape[2]}x{image.shape[1]} (WxH) but its label {label_path} is "
                f"{label.shape[1]}x{label.shape[0]}"
            )
        if self.check_labels:
            check_label_values(label, self.num_classes, self.ignore_index, path=label_path, hint=self.hint)
        return {"image": image, "label": torch.from_numpy(label), "name": image_path.stem}

    def __getitem__(self, index: int) -> Sample:
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(images={self.image_dir}, labels={self.label_dir}, n={len(self)})"
