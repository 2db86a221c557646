"""Datasets, zero-shot splits, transforms, demo data and preparation of the open-vocabulary benchmarks.

A sample is ``{"image": uint8 (3, H, W) RGB, "label": int64 (H, W), "name": str}``. Labels use the dataset's
ignore value, ``dataset_info(name).ignore_index``: 255 everywhere except ``ade20k_847`` (65535) and
``pascal_context_459`` (459), where 255 is a real class id.
"""

from ovcore.data.build import build_dataset
from ovcore.data.catalog import (
    DatasetInfo,
    SplitLayout,
    dataset_info,
    default_root,
    get_class_names,
    list_datasets,
    register_dataset,
)
from ovcore.data.collate import collate_samples
from ovcore.data.demo import DEMO_CLASSES, DemoSegmentation, generate_demo_scene, write_demo_dataset
from ovcore.data.folder import SemSegFolder, check_label_values, pair_by_basename
from ovcore.data.io import read_image, read_label
from ovcore.data.transforms import (
    MMSegTestTransform,
    MMSegTrainTransform,
    SampleTransform,
    SEDTestTransform,
    SEDTrainTransform,
)
from ovcore.data.zeroshot import (
    ZeroShotDataset,
    ZeroShotSplit,
    compact_seen_labels,
    get_zeroshot_split,
    remap_unseen_to_ignore,
)

__all__ = [
    "build_dataset",
    "list_datasets",
    "dataset_info",
    "get_class_names",
    "register_dataset",
    "default_root",
    "DatasetInfo",
    "SplitLayout",
    "SemSegFolder",
    "pair_by_basename",
    "check_label_values",
    "read_image",
    "read_label",
    "collate_samples",
    "ZeroShotSplit",
    "ZeroShotDataset",
    "get_zeroshot_split",
    "remap_unseen_to_ignore",
    "compact_seen_labels",
    "SampleTransform",
    "SEDTrainTransform",
    "SEDTestTransform",
    "MMSegTrainTransform",
    "MMSegTestTransform",
    "DEMO_CLASSES",
    "DemoSegmentation",
    "generate_demo_scene",
    "write_demo_dataset",
]
