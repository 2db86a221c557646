"""The benchmarks of the CLIP-ZSS entry points, as data: which ovcore dataset, which classes are seen/unseen.

Two protocols (spec §2-§4):

* zero-shot (paper Table 1): ``voc_zs`` (15/5), ``coco_stuff_zs`` (156/15), ``context_zs`` (49/10). Training
  labels have the unseen classes remapped to ignore; the validation split keeps every class and is scored over all
  classes with mIoU(S) / mIoU(U) / hIoU from one confusion matrix.
* cross-dataset open vocabulary (paper Table 7): a model trained on the 156 seen classes of COCO-Stuff is tested on
  ``voc20``, ``pascal_context_59`` and ``ade20k_150`` with those datasets' class names (mIoU and images/s).

``demo_zs`` is the same zero-shot protocol on ovcore's procedural demo scenes (``ovcore demo-data``): 6 seen
classes and 2 unseen ("yellow triangle", "striped texture"; ``clipzss.presets.DEMO_SEEN``). It exists for CPU smoke
runs and tests; its numbers mean nothing about the paper.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_GROUPS",
    "Benchmark",
    "BenchmarkName",
    "CROSS_DATASET",
    "EvalChoice",
    "TrainBenchmark",
    "ZERO_SHOT",
    "demo_split",
    "expand_benchmarks",
    "get_benchmark",
    "root_or_default",
]

TrainBenchmark = Literal["voc_zs", "coco_stuff_zs", "context_zs", "demo_zs"]
"""Benchmarks ``clipzss-train`` trains on (the zero-shot ones: training labels with unseen classes ignored)."""

BenchmarkName = Literal["voc_zs", "coco_stuff_zs", "context_zs", "demo_zs", "voc20", "pascal_context_59", "ade20k_150"]
"""Every benchmark ``clipzss-eval`` scores."""

EvalChoice = Literal[
    "voc_zs",
    "coco_stuff_zs",
    "context_zs",
    "demo_zs",
    "voc20",
    "pascal_context_59",
    "ade20k_150",
    "zero-shot",
    "cross-dataset",
]
"""A benchmark name or a group name (:data:`BENCHMARK_GROUPS`)."""

ZERO_SHOT: tuple[str, ...] = ("voc_zs", "coco_stuff_zs", "context_zs")
"""Paper Table 1."""

CROSS_DATASET: tuple[str, ...] = ("voc20", "pascal_context_59", "ade20k_150")
"""Paper Table 7 (after training on the COCO-Stuff 156 seen classes)."""

BENCHMARK_GROUPS: dict[str, tuple[str, ...]] = {"zero-shot": ZERO_SHOT, "cross-dataset": CROSS_DATASET}


@dataclass(frozen=True)
class Benchmark:
    """One evaluation (and possibly training) setting.

    Attributes:
        name: CLI name.
        dataset: ovcore.data registry name of the images and labels.
        zero_shot: Whether the benchmark has a seen/unseen split (scored with mIoU(S)/(U)/hIoU).
        description: One line for ``--help`` and tables.
    """

    name: str
    dataset: str
    zero_shot: bool
    description: str

    def split(self) -> Any:
        """The :class:`ovcore.data.ZeroShotSplit` (None for the cross-dataset benchmarks)."""
        if not self.zero_shot:
            return None
        if self.name == "demo_zs":
            return demo_split()
        from ovcore.data import get_zeroshot_split

        return get_zeroshot_split(self.dataset)

    def class_names(self) -> list[str]:
        """Every class name in dataset order (the test vocabulary)."""
        from ovcore.data import get_class_names

        return get_class_names(self.dataset)

    def ignore_index(self) -> int:
        """The label value that is never scored."""
        from ovcore.data import dataset_info

        return dataset_info(self.dataset).ignore_index

    def build(
        self,
        root: str | os.PathLike | None,
        split: str,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        *,
        compact_seen: bool = False,
    ) -> Dataset:
        """The dataset of ``split``; for zero-shot training (``split="train"``) unseen pixels become ignore.

        ``compact_seen`` (training only) relabels the seen classes ``0..Ns-1`` (ZegCLIP's compact ids).

        Raises:
            FileNotFoundError: missing root or split folder (the message names the ``ovcore`` command that writes it).
            ValueError: unknown split.
        """
        from ovcore.data import ZeroShotDataset, build_dataset

        if self.name != "demo_zs":
            return build_dataset(self.dataset, root, split, transform, compact_seen=compact_seen)
        # The demo layout has full labels; wrap it like the registered zero-shot datasets.
        base = build_dataset("demo", root, split)
        return ZeroShotDataset(base, demo_split(), train=split == "train", transform=transform, compact=compact_seen)


def demo_split() -> Any:
    """6 seen / 2 unseen classes of ``ovcore.data.DEMO_CLASSES`` (the tiny presets' vocabulary)."""
    from ovcore.data import DEMO_CLASSES, ZeroShotSplit

    from ..presets import DEMO_SEEN

    seen = list(DEMO_SEEN)
    unseen = [i for i in range(len(DEMO_CLASSES)) if i not in seen]
    return ZeroShotSplit(seen, unseen, list(DEMO_CLASSES))


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("voc_zs", "voc_zs", True, "PASCAL VOC 2012, 15 seen / 5 unseen (Table 1)"),
        Benchmark("coco_stuff_zs", "coco_stuff_zs", True, "COCO-Stuff 164k, 156 seen / 15 unseen (Table 1)"),
        Benchmark("context_zs", "context_zs", True, "PASCAL Context-59, 49 seen / 10 unseen (Table 1)"),
        Benchmark("demo_zs", "demo", True, "procedural demo scenes, 6 seen / 2 unseen (smoke tests)"),
        Benchmark("voc20", "voc20", False, "PASCAL VOC-20, cross-dataset (Table 7)"),
        Benchmark("pascal_context_59", "pascal_context_59", False, "PASCAL Context-59, cross-dataset (Table 7)"),
        Benchmark("ade20k_150", "ade20k_150", False, "ADE20K-150, cross-dataset (Table 7)"),
    )
}


def get_benchmark(name: str) -> Benchmark:
    """The :class:`Benchmark` called ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return BENCHMARKS[name]
    except KeyError:
        known = ", ".join([*BENCHMARKS, *BENCHMARK_GROUPS])
        raise ValueError(f"unknown benchmark {name!r}; known: {known}") from None


def expand_benchmarks(names: Sequence[str]) -> list[Benchmark]:
    """Benchmark and group names -> benchmarks, in order, without duplicates."""
    out: list[str] = []
    for name in names:
        for item in BENCHMARK_GROUPS.get(name, (name,)):
            if item not in out:
                out.append(item)
    return [get_benchmark(n) for n in out]


def root_or_default(root: str | os.PathLike | None) -> Path:
    """The dataset root: the given one, else ``$DETECTRON2_DATASETS`` or ``./datasets`` (ovcore's default)."""
    from ovcore.data import default_root

    return Path(root) if root is not None else default_root()
