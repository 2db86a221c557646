"""Dataset catalogue: names, prepared layouts, class counts and ignore values, as data.

Every benchmark is described by a :class:`DatasetInfo`: where its images and prepared labels live below the
dataset root (the layouts written by ``ovcore prepare``, identical to the official detectron2 prepare scripts),
how many classes the labels use, which value is ignored, and which class-name JSON names them.

Ignore convention: a sample's ``label`` always uses ``dataset_info(name).ignore_index``. That is 255 for every
dataset with at most 255 classes, 65535 for ``ade20k_847`` and 459 for ``pascal_context_459`` (the values the
official registrations use), because 255 is a valid class id there. Pass ``ignore_index=info.ignore_index`` to
the transforms and the evaluator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ovcore.data._resources import class_names_from_json, zeroshot_table

__all__ = [
    "DatasetInfo",
    "SplitLayout",
    "register_dataset",
    "dataset_info",
    "list_datasets",
    "get_class_names",
    "default_root",
    "resolve_split",
]

SPLIT_ALIASES = {"test": "val", "validation": "val", "training": "train"}


@dataclass(frozen=True)
class SplitLayout:
    """Where one split of a prepared dataset lives, relative to the dataset root."""

    image_dir: str
    label_dir: str
    prepare_args: str = ""
    """Extra ``ovcore prepare`` arguments that produce this split (e.g. ``--splits train``)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of one registered dataset.

    Attributes:
        name: registry name (``build_dataset(name, ...)``).
        num_classes: label ids are ``0 .. num_classes - 1`` (plus ``ignore_index``).
        ignore_index: the label value that is never scored (see the module docstring).
        class_json: the class-name source, ``"<file>.json"`` under ``ovcore/data/classnames`` or
            ``"zeroshot_splits.json#<key>"``.
        splits: split name (``"train"``, ``"val"``) -> :class:`SplitLayout`.
        image_ext / label_ext: file suffixes paired by basename.
        prepare: the command that writes the prepared layout (e.g. ``"ovcore prepare coco_stuff"``).
        description: one line for listings.
        zeroshot: key of the seen/unseen split in ``zeroshot_splits.json`` for the inductive zero-shot datasets.
        merge_predictions_from: PAS-20b evaluation: predictions ``>=`` this id count as this id ("background").
        names: inline class names, used instead of ``class_json`` when given (the demo dataset).
    """

    name: str
    num_classes: int
    ignore_index: int
    class_json: str
    splits: Mapping[str, SplitLayout]
    image_ext: str = ".jpg"
    label_ext: str = ".png"
    prepare: str | None = None
    description: str = ""
    zeroshot: str | None = None
    merge_predictions_from: int | None = None
    names: tuple[str, ...] | None = None

    @property
    def class_names(self) -> list[str]:
        """The class names (a fresh list); ``len`` may exceed ``num_classes`` for PAS-20b."""
        return get_class_names(self.name)

    def prepare_command(self, split: str | None = None, root: str | os.PathLike | None = None) -> str:
        """The shell command that produces ``split`` of this dataset under ``root``."""
        if self.prepare is None:
            return ""
        cmd = self.prepare
        if root is not None:
            cmd += f" --root {root}"
        if split is not None and split in self.splits and self.splits[split].prepare_args:
            cmd += f" {self.splits[split].prepare_args}"
        return cmd


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo, *, overwrite: bool = False) -> DatasetInfo:
    """Add a dataset description to the registry.

    Args:
        info: the description.
        overwrite: replace an existing entry of the same name instead of raising.
    """
    if info.name in _DATASETS and not overwrite:
        raise ValueError(f"dataset {info.name!r} is already registered")
    _DATASETS[info.name] = info
    return info


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return _DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}") from None


def get_class_names(name: str) -> list[str]:
    """Class names of a registered dataset, index = class id (a fresh list).

    Zero-shot datasets use the names of ``zeroshot_splits.json`` (ZegCLIP/mmseg spelling, e.g. Context "table");
    the SED benchmarks use SED's JSON files verbatim (synonyms separated by ", ").
    """
    info = dataset_info(name)
    if info.names is not None:
        return list(info.names)
    source = info.class_json
    if "#" in source:
        _, key = source.split("#", 1)
        return list(zeroshot_table()[key]["class_names"])
    return class_names_from_json(source)


def default_root() -> Path:
    """The dataset root: ``$DETECTRON2_DATASETS`` or ``./datasets`` (as in the official code)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


def resolve_split(info: DatasetInfo, split: str) -> str:
    """Canonical split name (``"test"``/``"validation"`` -> ``"val"``, ``"training"`` -> ``"train"``)."""
    canonical = SPLIT_ALIASES.get(split, split)
    if canonical not in info.splits:
        raise ValueError(f"dataset {info.name!r} has no split {split!r}; available: {', '.join(sorted(info.splits))}")
    return canonical


# --------------------------------------------------------------------------------------------------------------
# Built-in datasets (official SED ``datasets/prepare_*.py``; ZegCLIP's dataset configs). Paths are relative to
# the dataset root.

_COCO = {
    "train": SplitLayout("coco-stuff/images/train2017", "coco-stuff/annotations_detectron2/train2017"),
    "val": SplitLayout("coco-stuff/images/val2017", "coco-stuff/annotations_detectron2/val2017"),
}
_ADE150 = {
    "train": SplitLayout(
        "ADEChallengeData2016/images/training", "ADEChallengeData2016/annotations_detectron2/training"
    ),
    "val": SplitLayout(
        "ADEChallengeData2016/images/validation", "ADEChallengeData2016/annotations_detectron2/validation"
    ),
}
_ADE847 = {
    "train": SplitLayout(
        "ADE20K_2021_17_01/images_detectron2/training",
        "ADE20K_2021_17_01/annotations_detectron2/training",
        "--splits train",
    ),
    "val": SplitLayout(
        "ADE20K_2021_17_01/images_detectron2/validation", "ADE20K_2021_17_01/annotations_detectron2/validation"
    ),
}
_PC59 = {
    "train": SplitLayout(
        "VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc59_train", "--splits train"
    ),
    "val": SplitLayout("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc59_val"),
}
_PC459 = {
    "val": SplitLayout("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc459_val"),
}
_VOC = {
    "train": SplitLayout(
        "VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2/train", "--splits train"
    ),
    "val": SplitLayout("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2/val"),
}
_VOC_BG = {
    "train": SplitLayout(
        "VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2_bg/train", "--splits train"
    ),
    "val": SplitLayout("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2_bg/val"),
}

for _info in (
    DatasetInfo(
        "coco_stuff_171",
        num_classes=171,
        ignore_index=255,
        class_json="coco.json",
        splits=_COCO,
        prepare="ovcore prepare coco_stuff",
        description="COCO-Stuff 164k, 171 classes (SED training set and COCO val)",
    ),
    DatasetInfo(
        "ade20k_150",
        num_classes=150,
        ignore_index=255,
        class_json="ade150.json",
        splits=_ADE150,
        prepare="ovcore prepare ade20k_150",
        description="ADE20K SceneParsing, 150 classes (A-150)",
    ),
    DatasetInfo(
        "ade20k_847",
        num_classes=847,
        ignore_index=65535,
        class_json="ade847.json",
        splits=_ADE847,
        label_ext=".tif",
        prepare="ovcore prepare ade20k_847",
        description="ADE20K-full 2021_17_01, 847 classes, uint16 TIFF labels (A-847)",
    ),
    DatasetInfo(
        "pascal_context_59",
        num_classes=59,
        ignore_index=255,
        class_json="pc59.json",
        splits=_PC59,
        prepare="ovcore prepare pascal_context_59",
        description="PASCAL Context, 59 classes (PC-59)",
    ),
    DatasetInfo(
        "pascal_context_459",
        num_classes=459,
        ignore_index=459,
        class_json="pc459.json",
        splits=_PC459,
        label_ext=".tif",
        prepare="ovcore prepare pascal_context_459",
        description="PASCAL Context, 459 classes, uint16 TIFF labels (PC-459; ignore 459 never occurs)",
    ),
    DatasetInfo(
        "voc20",
        num_classes=20,
        ignore_index=255,
        class_json="voc20.json",
        splits=_VOC,
        prepare="ovcore prepare voc",
        description="PASCAL VOC 2012, 20 classes, background ignored (PAS-20)",
    ),
    DatasetInfo(
        "voc20b",
        num_classes=21,
        ignore_index=255,
        class_json="voc20b.json",
        splits=_VOC_BG,
        prepare="ovcore prepare voc",
        merge_predictions_from=20,
        description="PASCAL VOC 2012, 20 classes + background id 20; 59 names, "
        "predictions >= 20 count as background (PAS-20b)",
    ),
    DatasetInfo(
        "voc_zs",
        num_classes=20,
        ignore_index=255,
        class_json="zeroshot_splits.json#pascal_voc_2012",
        splits=_VOC,
        prepare="ovcore prepare voc",
        zeroshot="pascal_voc_2012",
        description="PASCAL VOC 2012 inductive zero-shot, 15 seen / 5 unseen",
    ),
    DatasetInfo(
        "coco_stuff_zs",
        num_classes=171,
        ignore_index=255,
        class_json="zeroshot_splits.json#coco_stuff_164k",
        splits=_COCO,
        prepare="ovcore prepare coco_stuff",
        zeroshot="coco_stuff_164k",
        description="COCO-Stuff 164k inductive zero-shot, 156 seen / 15 unseen",
    ),
    DatasetInfo(
        "context_zs",
        num_classes=59,
        ignore_index=255,
        class_json="zeroshot_splits.json#pascal_context_59",
        splits=_PC59,
        prepare="ovcore prepare pascal_context_59",
        zeroshot="pascal_context_59",
        description="PASCAL Context-59 inductive zero-shot, 49 seen / 10 unseen",
    ),
):
    register_dataset(_info)
