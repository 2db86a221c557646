"""The evaluation benchmarks of every method, as data, and the scoring protocol each one implies.

One registry serves all methods' ``eval`` commands (README "Benchmarks"):

* open-vocabulary (SED paper, Table 1; the six runs of the official evaluation script): ``a847``, ``pc459``,
  ``a150``, ``pc59``, ``pas20``, ``pas20b`` (group ``open-vocabulary``);
* zero-shot, inductive (CLIP-ZSS paper, Table 1): ``voc_zs`` 15/5, ``coco_stuff_zs`` 156/15, ``context_zs`` 49/10
  (group ``zero-shot``), scored over all classes with mIoU(S) / mIoU(U) / hIoU from one confusion matrix;
* cross-dataset (CLIP-ZSS paper, Table 7): ``voc20``, ``pascal_context_59``, ``ade20k_150`` (group
  ``cross-dataset``);
* ``demo`` and ``demo_zs``: the procedural scenes of ``ovcore demo-data`` for CPU smoke runs (the latter with 6 seen
  and 2 unseen classes); their numbers mean nothing about a paper.

A benchmark is named by its short name, its title (``A-150``), its dataset name (``ade20k_150``) or a group name;
case, ``-`` and ``_`` do not matter. This module imports neither torch nor a method.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_GROUPS",
    "DEMO_SEEN",
    "Benchmark",
    "EvalProtocol",
    "get_benchmark",
    "list_benchmarks",
    "resolve_benchmarks",
]

DEMO_SEEN: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
"""Seen ids of the demo vocabulary (``ovcore.data.DEMO_CLASSES``): "yellow triangle" and "striped texture" unseen."""


@dataclass(frozen=True)
class EvalProtocol:
    """How one benchmark is scored.

    Attributes:
        dataset: The ``ovcore.data`` dataset name.
        vocabulary: Names given to the model (59 for PAS-20b: 20 VOC classes plus 39 background proxies).
        score_names: Names of the ``num_classes`` scored classes.
        num_classes: Classes in the confusion matrix.
        ignore_index: Label value that is never scored.
        pred_remap: Maps predicted ids before scoring (PAS-20b: ids >= 20 become background), or None.
        seen: Seen class ids for zero-shot benchmarks (mIoU(S)/(U)/hIoU), else None.
    """

    dataset: str
    vocabulary: list[str]
    score_names: list[str]
    num_classes: int
    ignore_index: int
    pred_remap: Callable[[Any], Any] | None = None
    seen: list[int] | None = None


@dataclass(frozen=True)
class Benchmark:
    """One evaluation setting.

    Attributes:
        name: Short name used on the command line and in result file names.
        dataset: The ``ovcore.data`` registry name of the images and labels.
        title: Column title for tables (the papers' spelling).
        zero_shot: Whether the benchmark has a seen/unseen split.
        description: One line for ``--help`` and listings.
    """

    name: str
    dataset: str
    title: str
    zero_shot: bool = False
    description: str = ""

    def split(self) -> Any:
        """The :class:`ovcore.data.ZeroShotSplit` (None for benchmarks without one)."""
        if not self.zero_shot:
            return None
        from ovcore.data import DEMO_CLASSES, ZeroShotSplit, get_zeroshot_split

        if self.dataset == "demo":
            unseen = [i for i in range(len(DEMO_CLASSES)) if i not in DEMO_SEEN]
            return ZeroShotSplit(list(DEMO_SEEN), unseen, list(DEMO_CLASSES))
        return get_zeroshot_split(self.dataset)

    def protocol(self) -> EvalProtocol:
        """The scoring protocol: vocabulary, scored classes, ignore value, prediction remap, seen ids."""
        from ovcore.data import dataset_info, get_class_names

        info = dataset_info(self.dataset)
        names = get_class_names(self.dataset)
        scored, remap = names[: info.num_classes], None
        if info.merge_predictions_from is not None:
            from ovcore.metrics import voc20b_collapse

            fg = info.merge_predictions_from
            remap = functools.partial(voc20b_collapse, num_fg=fg)
            scored = names[:fg] + ["background"]
        split = self.split()
        seen = list(split.seen) if split is not None else None
        return EvalProtocol(self.dataset, names, scored, info.num_classes, info.ignore_index, remap, seen)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("a847", "ade20k_847", "A-847", description="ADE20K-full, 847 classes (SED Table 1)"),
        Benchmark("pc459", "pascal_context_459", "PC-459", description="PASCAL Context, 459 classes (SED Table 1)"),
        Benchmark("a150", "ade20k_150", "A-150", description="ADE20K, 150 classes (SED Table 1, CLIP-ZSS Table 7)"),
        Benchmark("pc59", "pascal_context_59", "PC-59", description="PASCAL Context, 59 classes (SED Table 1)"),
        Benchmark("pas20", "voc20", "PAS-20", description="PASCAL VOC, 20 classes (SED Table 1, CLIP-ZSS Table 7)"),
        Benchmark("pas20b", "voc20b", "PAS-20b", description="PASCAL VOC with background proxies (SED Table 1)"),
        Benchmark("voc_zs", "voc_zs", "VOC 15/5", True, "PASCAL VOC 2012, 15 seen / 5 unseen (CLIP-ZSS Table 1)"),
        Benchmark(
            "coco_stuff_zs", "coco_stuff_zs", "COCO-Stuff 156/15", True, "COCO-Stuff, 156 seen / 15 unseen (Table 1)"
        ),
        Benchmark("context_zs", "context_zs", "Context 49/10", True, "PASCAL Context-59, 49 seen / 10 unseen"),
        Benchmark("demo", "demo", "demo", description="procedural demo scenes, 8 classes (smoke runs)"),
        Benchmark("demo_zs", "demo", "demo 6/2", True, "procedural demo scenes, 6 seen / 2 unseen (smoke runs)"),
    )
}
"""Every benchmark by short name."""

BENCHMARK_GROUPS: dict[str, tuple[str, ...]] = {
    "open-vocabulary": ("a847", "pc459", "a150", "pc59", "pas20", "pas20b"),
    "zero-shot": ("voc_zs", "coco_stuff_zs", "context_zs"),
    "cross-dataset": ("pas20", "pc59", "a150"),
}
"""Named sets of benchmarks: the papers' tables."""


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(" ", "").replace("/", "")


def list_benchmarks() -> list[str]:
    """Short names of every benchmark, in registry order."""
    return list(BENCHMARKS)


def get_benchmark(name: str, option: str = "--benchmarks") -> Benchmark:
    """The benchmark called ``name`` (short name, title or dataset name; case, ``-`` and ``_`` ignored).

    Raises:
        ValueError: unknown name (the message names ``option`` and lists the choices).
    """
    wanted = _key(name)
    for bench in BENCHMARKS.values():
        if wanted in (_key(bench.name), _key(bench.title)):
            return bench
    for bench in BENCHMARKS.values():  # a dataset name: the first benchmark on that dataset
        if wanted == _key(bench.dataset):
            return bench
    choices = ", ".join([*BENCHMARKS, *BENCHMARK_GROUPS])
    raise ValueError(f"{option}: unknown benchmark {name!r}; choose from {choices}")


def resolve_benchmarks(
    names: Sequence[str],
    option: str = "--benchmarks",
    lookup: Callable[[str, str], Benchmark] = get_benchmark,
) -> list[Benchmark]:
    """Benchmark and group names -> benchmarks, in order, each once.

    Args:
        names: Benchmark names (see :func:`get_benchmark`) and group names.
        option: The option the names came from, for messages.
        lookup: ``lookup(name, option)`` finds one benchmark (``ovcore.cmd.evaluate`` also accepts dataset names).

    Raises:
        ValueError: an empty list or an unknown name (the message names ``option``).
    """
    out: dict[str, Benchmark] = {}
    for name in names:
        group = BENCHMARK_GROUPS.get(name.strip().lower())
        for item in group if group is not None else (name,):
            bench = lookup(item, option)
            out.setdefault(bench.name, bench)
    if not out:
        raise ValueError(f"{option}: no benchmark given; choose from {', '.join([*BENCHMARKS, *BENCHMARK_GROUPS])}")
    return list(out.values())
