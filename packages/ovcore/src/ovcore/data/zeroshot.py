"""Inductive zero-shot splits (ZegCLIP / CLIP-ZSS protocol, CLIP-ZSS paper Sec. 4.1).

Training: every image of the training set is used; pixels of unseen classes become ignore, exactly like
ZegCLIP's label lookup table (unseen -> -1 -> 255), so they are indistinguishable from void and padding. Unseen
class names are never needed for training. Test: all classes, labels untouched.

Label ids stay in the full dataset order by default; ``compact_seen_labels`` gives ZegCLIP's compact
``0..Ns-1`` seen ids for a model whose training text embeddings are only the seen rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ovcore.data._resources import zeroshot_table

__all__ = [
    "ZeroShotSplit",
    "ZeroShotDataset",
    "get_zeroshot_split",
    "remap_unseen_to_ignore",
    "compact_seen_labels",
    "ZEROSHOT_DATASETS",
]

# Registry name -> key of zeroshot_splits.json.
ZEROSHOT_DATASETS = {
    "voc_zs": "pascal_voc_2012",
    "coco_stuff_zs": "coco_stuff_164k",
    "context_zs": "pascal_context_59",
}

Label = torch.Tensor | np.ndarray


@dataclass(frozen=True)
class ZeroShotSplit:
    """Seen/unseen class ids (0-based, dataset order) with the dataset's class names."""

    seen: list[int]
    unseen: list[int]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def seen_names(self) -> list[str]:
        """Names of the seen classes in compact order (the training vocabulary)."""
        return [self.class_names[i] for i in self.seen]

    @property
    def unseen_names(self) -> list[str]:
        return [self.class_names[i] for i in self.unseen]


def get_zeroshot_split(name: str) -> ZeroShotSplit:
    """The split of ``"voc_zs"`` (15/5), ``"coco_stuff_zs"`` (156/15) or ``"context_zs"`` (49/10).

    The keys of ``zeroshot_splits.json`` (``"pascal_voc_2012"``, ...) are accepted too.
    """
    key = ZEROSHOT_DATASETS.get(name, name)
    table = zeroshot_table()
    if key not in table or key.startswith("_") or "seen_idx" not in table[key]:
        known = ", ".join(ZEROSHOT_DATASETS)
        raise ValueError(f"unknown zero-shot split {name!r}; known: {known}")
    entry = table[key]
    split = ZeroShotSplit(list(entry["seen_idx"]), list(entry["unseen_idx"]), list(entry["class_names"]))
    # The table is hand-made: check that it partitions the classes, so a bad edit fails loudly.
    if sorted(split.seen + split.unseen) != list(range(split.num_classes)):
        raise RuntimeError(f"zeroshot_splits.json entry {key!r}: seen + unseen is not a partition of the classes")
    return split


def _lookup(values: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(list(values), dtype=torch.int64, device=device)


def remap_unseen_to_ignore(label: Label, unseen: Sequence[int], ignore_index: int = 255) -> Label:
    """Set pixels of unseen classes to ``ignore_index`` (a new tensor/array of the same type and dtype)."""
    if isinstance(label, np.ndarray):
        return np.where(np.isin(label, np.asarray(list(unseen))), np.asarray(ignore_index, label.dtype), label)
    mask = torch.isin(label, _lookup(unseen, label.device))
    return label.masked_fill(mask, ignore_index)


def compact_seen_labels(label: Label, seen: Sequence[int], ignore_index: int = 255) -> Label:
    """ZegCLIP's lookup: seen class ``seen[i]`` -> ``i``; every other value (unseen, ignore) -> ``ignore_index``."""
    as_numpy = isinstance(label, np.ndarray)
    tensor = torch.from_numpy(label) if as_numpy else label
    seen_t = _lookup(seen, tensor.device)
    out = torch.full_like(tensor, ignore_index)
    if seen_t.numel():
        # searchsorted on the sorted ids finds each pixel's position; a hit is a seen class.
        order = torch.argsort(seen_t)
        sorted_ids = seen_t[order]
        pos = torch.searchsorted(sorted_ids, tensor.to(torch.int64)).clamp_(max=sorted_ids.numel() - 1)
        hit = sorted_ids[pos] == tensor
        out = torch.where(hit, order[pos].to(tensor.dtype), out)
    return out.numpy() if as_numpy else out


class ZeroShotDataset(Dataset):
    """Wraps a full-label dataset and applies the inductive remapping after the transform.

    Remapping after the transform mirrors ZegCLIP, where the remap happens in the model: mmseg's
    ``cat_max_ratio`` crop therefore still sees unseen classes as categories.

    Args:
        base: dataset returning samples with full-class labels and no transform.
        split: the seen/unseen split.
        train: remap unseen to ignore (training) or keep all classes (test).
        transform: applied to each sample before the remapping.
        ignore_index: the ignore value.
        compact: additionally map seen ids to ``0..Ns-1`` (training only).
    """

    def __init__(
        self,
        base: Dataset,
        split: ZeroShotSplit,
        *,
        train: bool,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        ignore_index: int = 255,
        compact: bool = False,
    ) -> None:
        if compact and not train:
            raise ValueError("compact seen labels only make sense for training (test labels keep all classes)")
        self.base = base
        self.split = split
        self.train = train
        self.transform = transform
        self.ignore_index = ignore_index
        self.compact = compact

    @property
    def class_names(self) -> list[str]:
        """The vocabulary the labels index: seen names (compact) or all names."""
        return self.split.seen_names if self.compact else list(self.split.class_names)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[index]
        if self.transform is not None:
            sample = self.transform(sample)
        if self.train:
            sample = dict(sample)
            if self.compact:
                sample["label"] = compact_seen_labels(sample["label"], self.split.seen, self.ignore_index)
            else:
                sample["label"] = remap_unseen_to_ignore(sample["label"], self.split.unseen, self.ignore_index)
        return sample
