"""``build_dataset``: a registered name and a dataset root -> a torch Dataset of sample dicts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ovcore.data.catalog import dataset_info, default_root, resolve_split
from ovcore.data.folder import SemSegFolder
from ovcore.data.zeroshot import ZeroShotDataset, get_zeroshot_split

__all__ = ["build_dataset"]


def build_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "val",
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    check_labels: bool = True,
    compact_seen: bool = False,
    allow_unpaired_labels: bool = False,
) -> Dataset:
    """Build a registered dataset from its prepared layout.

    Samples are ``{"image": uint8 (3, H, W) RGB, "label": int64 (H, W), "name": str}``; ``label`` uses
    ``dataset_info(name).ignore_index`` (255, except 65535 for ``ade20k_847`` and 459 for ``pascal_context_459``).
    For the zero-shot datasets (``voc_zs``, ``coco_stuff_zs``, ``context_zs``) the ``"train"`` split has unseen
    pixels set to ignore (after ``transform``); ``"val"`` keeps all classes.

    Args:
        name: a name from :func:`list_datasets`.
        root: dataset root; default ``$DETECTRON2_DATASETS`` or ``./datasets``.
        split: ``"train"`` or ``"val"`` (``"test"`` is an alias of ``"val"``).
        transform: callable applied to every sample dict.
        check_labels: check on every read that label values are class ids or the ignore value.
        compact_seen: zero-shot training only: label seen classes ``0..Ns-1`` (ZegCLIP's compact ids).
        allow_unpaired_labels: warn instead of failing when some labels have no image.

    Raises:
        ValueError: unknown name or split, unpaired files, or bad label values (on read).
        FileNotFoundError: missing root or split folder (the message names the ``ovcore prepare`` command).
    """
    info = dataset_info(name)
    split = resolve_split(info, split)
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset root {root} does not exist; pass root=... or set $DETECTRON2_DATASETS "
            f"(then run `{info.prepare_command(split, root)}`)"
        )
    layout = info.splits[split]
    hint = f"it is written by `{info.prepare_command(split, root)}`" if info.prepare else ""
    folder = SemSegFolder(
        root / layout.image_dir,
        root / layout.label_dir,
        num_classes=info.num_classes,
        ignore_index=info.ignore_index,
        image_ext=info.image_ext,
        label_ext=info.label_ext,
        transform=None if info.zeroshot else transform,
        check_labels=check_labels,
        hint=hint,
        allow_unpaired_labels=allow_unpaired_labels,
        class_names=info.class_names,
    )
    if info.zeroshot is None:
        if compact_seen:
            raise ValueError(f"compact_seen applies to the zero-shot datasets only, not {name!r}")
        return folder
    return ZeroShotDataset(
        folder,
        get_zeroshot_split(info.zeroshot),  # the table key, so a dataset registered under a new name works too
        train=split == "train",
        transform=transform,
        ignore_index=info.ignore_index,
        compact=compact_seen,
    )
