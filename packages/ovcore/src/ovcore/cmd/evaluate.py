"""The ``eval`` command of every method: score a model on benchmarks of the shared registry (``ovcore.benchmarks``).

    sed-eval --checkpoint ckpt.pt --benchmarks open-vocabulary --data-root datasets
    maskclip-eval --preset maskclip_vit_b16 --benchmarks a150 pc59

Every benchmark is scored with ``ovcore.evaluate`` under its :class:`ovcore.benchmarks.EvalProtocol` (vocabulary,
scored classes, ignore value, PAS-20b's background remap, seen / unseen ids for mIoU(S) / mIoU(U) / hIoU). A table is
printed and ``<output-dir>/<benchmark>[suffix].json`` plus ``summary[suffix].json`` are written. Under ``torchrun``
the images are sharded over the processes and the metrics all-reduced. Benchmarks, options and dataset folders are
checked before the model is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from ovcore.benchmarks import (
    BENCHMARK_GROUPS,
    BENCHMARKS,
    Benchmark,
    EvalProtocol,
    get_benchmark,
    resolve_benchmarks,
)
from ovcore.cmd.errors import UsageError, check_min, check_output_dir
from ovcore.cmd.log import quiet_logger, say
from ovcore.cmd.model import LoadedModel, Loader, as_prediction, load_with_method, method_name
from ovcore.cmd.options import DataOptions, ModelOptions, OutputOptions, check_data_root

__all__ = [
    "RESULT_COLUMNS",
    "EvalOptions",
    "benchmark_or_dataset",
    "build_benchmark_split",
    "first_images",
    "resolve_targets",
    "run_eval",
    "score",
]

_CHOICES = "; ".join(f"{b.name} ({b.title})" for b in BENCHMARKS.values())
_GROUPS = "; ".join(f"{g}: {' '.join(names)}" for g, names in BENCHMARK_GROUPS.items())

RESULT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("benchmark", "benchmark", 0),
    ("images", "num_images", 0),
    ("pAcc", "pAcc", 1),
    ("mIoU(S)", "mIoU_seen", 1),
    ("mIoU(U)", "mIoU_unseen", 1),
    ("hIoU", "hIoU", 1),
    ("mIoU", "mIoU", 1),
    ("img/s", "images_per_s", 2),
    ("ms/img", "ms_per_image", 1),
)
"""Columns of the results table (``ovcore.cmd.tables.format_table``): '-' where a metric does not apply."""


@dataclass(kw_only=True)
class EvalOptions(ModelOptions, DataOptions, OutputOptions):
    """Score a model on benchmarks of the shared registry (mIoU, pAcc, hIoU for zero-shot ones, ms per image)."""

    benchmarks: Annotated[
        tuple[str, ...],
        tyro.conf.arg(help=f"Benchmarks by name, title or dataset name: {_CHOICES}; or a group ({_GROUPS}). "
                      "Default: the method's."),
    ] = ()

    split: str = "val"
    """Split to evaluate."""

    max_images: int | None = None
    """Score only the first N images of each benchmark (a quick check; not comparable with published figures)."""

    batch_size: int = 1
    """Images per forward pass (consecutive images of the same size only)."""

    num_workers: int = 2
    """DataLoader workers reading the images."""

    warmup: int = 2
    """Leading forward passes left out of the timings (ms/image, images/s)."""

    progress: bool = True
    """Show a progress bar per benchmark."""

    per_class: bool = False
    """Also log the per-class IoU / accuracy table of every benchmark (it is always in the JSON)."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        for option, value, minimum in (
            ("--max-images", self.max_images, 1),
            ("--batch-size", self.batch_size, 1),
            ("--num-workers", self.num_workers, 0),
            ("--warmup", self.warmup, 0),
        ):
            check_min(option, value, minimum)


# ----------------------------------------------------------------------------------------------------- datasets
def benchmark_or_dataset(name: str, option: str = "--benchmarks") -> Benchmark:
    """The registered benchmark called ``name``, or an ad-hoc one over any ``ovcore.data`` dataset (its classes and
    ignore value; no seen / unseen split).

    Raises:
        ValueError: neither a benchmark nor a dataset name (the message names ``option`` and the choices).
    """
    try:
        return get_benchmark(name, option)
    except ValueError as err:
        from ovcore.data import list_datasets

        if name in list_datasets():
            return Benchmark(name, name, name, description=f"the {name} dataset")
        raise ValueError(f"{err}; or a dataset name from ovcore.data: {', '.join(list_datasets())}") from None


def resolve_targets(names: Sequence[str], option: str = "--benchmarks") -> list[Benchmark]:
    """Benchmark names, group names and dataset names -> benchmarks, in order, each once.

    Raises:
        ValueError: an empty list or an unknown name (the message names ``option``).
    """
    return resolve_benchmarks(names, option, lookup=benchmark_or_dataset)


def build_benchmark_split(bench: Benchmark, root: str | Path | None, split: str, transform: Any = None,
                          *, memory_fallback: bool = True) -> Any:
    """The images and labels of a benchmark (a zero-shot one keeps every class: it is scored over all of them).

    ``demo`` without a prepared ``<root>/demo`` folder is generated in memory (the scenes ``ovcore demo-data``
    writes: 64 train / 16 val, 128 px, seed 0) when ``memory_fallback``; the commands allow that only when the user
    gave no ``--data-root``, so a root without the demo data is an error rather than a silent switch.

    Raises:
        UsageError: the split is not prepared under the root (the message names ``--data-root`` and the fix).
    """
    from ovcore.data import DemoSegmentation, build_dataset, default_root

    base = Path(root) if root is not None else default_root()
    if bench.dataset == "demo" and not (base / "demo" / "images" / split).is_dir():
        if not memory_fallback:
            raise UsageError(
                f"--data-root {base}: no prepared demo {split} split in {base / 'demo'}; write it with "
                f"`ovcore demo-data --root {base}`, or leave out --data-root to use the built-in demo scenes"
            )
        say(f"note: no prepared demo data under {base}: using the built-in demo scenes ({split} split, in memory)")
        return DemoSegmentation(num_images=64 if split == "train" else 16, size=128, split=split, transform=transform)
    try:
        return build_dataset(bench.dataset, base, split, transform)
    except FileNotFoundError as err:
        raise UsageError(f"--data-root {base}: {bench.name} ({bench.dataset}): {err}") from err


def first_images(dataset: Any, n: int | None, option: str = "--max-images") -> Any:
    """The first ``n`` samples of ``dataset`` (all of them for None), for quick evaluations.

    Raises:
        ValueError: ``n < 1`` (the message names ``option``).
    """
    check_min(option, n, 1)
    if n is None or n >= len(dataset):
        return dataset
    from torch.utils.data import Subset

    return Subset(dataset, range(n))


# ------------------------------------------------------------------------------------------------------ scoring
def _mean_stats(stats: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-image statistics averaged over the images: numbers, and lists of numbers element-wise."""
    out: dict[str, Any] = {}
    for key in stats[0] if stats else ():
        values = [s.get(key) for s in stats]
        if all(isinstance(v, (int, float)) for v in values):
            out[key] = sum(values) / len(values)
        elif all(isinstance(v, (list, tuple)) and len(v) == len(values[0]) for v in values):
            if all(isinstance(x, (int, float)) for v in values for x in v):
                out[key] = [sum(v[i] for v in values) / len(values) for i in range(len(values[0]))]
    return out


def score(loaded: LoadedModel, dataset: Any, protocol: EvalProtocol, *, device: Any, batch_size: int = 1,
          warmup: int = 2, progress: bool = False, num_workers: int = 0, distributed: bool = False,
          iou_convention: str = "mmseg") -> dict[str, Any]:
    """Score a loaded model on one dataset under ``protocol`` (the model's vocabulary is restored afterwards).

    Returns:
        ``ovcore.evaluate``'s results plus ``dataset``, ``vocabulary_size`` and ``stats_mean`` (the mean of the
        method's per-image statistics, e.g. SED's classes kept per CER stage).
    """
    from ovcore.evaluate import evaluate

    stats: list[dict[str, Any]] = []
    names = list(protocol.vocabulary)

    def predict(images: Any) -> Any:
        pred = as_prediction(loaded.model.predict(images, **loaded.predict_options), names)
        stats.extend(pred.stats)
        return pred.probs

    previous = list(getattr(loaded.model, "class_names", []) or [])
    loaded.use_vocabulary(names)
    unseen = None
    if protocol.seen is not None:
        seen = set(protocol.seen)
        unseen = [i for i in range(protocol.num_classes) if i not in seen]
    try:
        results = evaluate(
            predict, dataset, num_classes=protocol.num_classes, class_names=protocol.score_names,
            batch_size=batch_size, device=device, seen_classes=protocol.seen, unseen_classes=unseen, warmup=warmup,
            progress=progress, num_workers=num_workers, pred_remap=protocol.pred_remap, distributed=distributed,
            ignore_index=protocol.ignore_index, iou_convention=iou_convention,  # type: ignore[arg-type]
        )
    finally:
        if previous and previous != names:
            loaded.use_vocabulary(previous)
    results.update(dataset=protocol.dataset, vocabulary_size=len(names), stats_mean=_mean_stats(stats))
    return results


# ------------------------------------------------------------------------------------------------------ command
def run_eval(method: Any, options: EvalOptions, *, load: Loader | None = None, prog: str | None = None,
             default_benchmarks: Sequence[str] = ("demo",), iou_convention: str = "mmseg") -> dict[str, dict[str, Any]]:
    """Body of a ``<method>-eval`` command; returns the results per benchmark name.

    Args:
        method: The ``MethodSpec`` (or its name when ``load`` is given).
        options: The parsed options (a method's subclass may add flags, read by ``load``).
        load: ``(options, device) -> LoadedModel``; default ``MethodSpec.create(preset, checkpoint=...)``.
        prog: The command's name for its output lines (default ``<method>-eval``).
        default_benchmarks: Scored when ``--benchmarks`` is not given.
        iou_convention: ``"mmseg"`` or ``"detectron2"`` (``ovcore.metrics``): the method's published protocol.
    """
    from ovcore.files import write_json
    from ovcore.train.distributed import cleanup, init_distributed

    name = method_name(method)
    prog = prog or f"{name}-eval"
    options.validate()
    benches = resolve_targets(options.benchmarks or default_benchmarks, "--benchmarks")
    out = check_output_dir(options.output_dir or f"runs/{prog.replace('-', '_')}", "--output-dir")
    if options.data_root is not None:
        check_data_root(options.data_root)
    fallback = options.data_root is None  # a root the user named must hold the data
    for bench in benches:  # every benchmark's files are found before the model is built
        if not (fallback and bench.dataset == "demo"):  # (the built-in demo scenes need no files)
            build_benchmark_split(bench, options.data_root, options.split, memory_fallback=False)
    info = init_distributed(options.device)
    try:
        loaded = load(options, info.device) if load is not None else load_with_method(method, options, info.device)
        if info.is_main:
            say(f"{prog}: {loaded.weights}; {info.world_size} process(es) on {info.device}")
        results = {b.name: _one_benchmark(loaded, b, options, info, fallback, iou_convention) for b in benches}
        if info.is_main:
            for b in benches:
                write_json(out / f"{b.name}{loaded.result_suffix}.json", results[b.name])
            _report(name, results, out, loaded.result_suffix)
        return results
    finally:
        cleanup(info)


def _one_benchmark(loaded: LoadedModel, bench: Benchmark, options: EvalOptions, info: Any, fallback: bool,
                   iou_convention: str) -> dict[str, Any]:
    protocol = bench.protocol()
    dataset = build_benchmark_split(bench, options.data_root, options.split, loaded.eval_transform,
                                    memory_fallback=fallback)
    dataset = first_images(dataset, options.max_images)
    extra = loaded.before_benchmark(bench) if loaded.before_benchmark is not None else {}
    if info.is_main:
        say(f"{bench.title}: {len(dataset)} images, {len(protocol.vocabulary)} class names")
    with quiet_logger("ovcore.evaluate", not options.per_class):
        results = score(loaded, dataset, protocol, device=info.device, batch_size=options.batch_size,
                        warmup=options.warmup, progress=options.progress and info.is_main,
                        num_workers=options.num_workers, distributed=info.world_size > 1,
                        iou_convention=iou_convention)
    head = {"benchmark": bench.name, "title": bench.title,
            "protocol": "zero-shot" if bench.zero_shot else "open-vocabulary", "description": bench.description,
            "weights": loaded.weights, "split": options.split}
    return {**head, **loaded.info, **extra, **results}


_SUMMARY_KEYS = ("benchmark", "title", "protocol", "dataset", "num_images", "pAcc", "mIoU", "mIoU_seen",
                 "mIoU_unseen", "hIoU", "mAcc", "fwIoU", "images_per_s", "ms_per_image")


def _report(method: str, results: dict[str, dict[str, Any]], out: Path, suffix: str) -> None:
    from ovcore.cmd.tables import format_table
    from ovcore.files import write_json

    say("")
    say(format_table(list(results.values()), RESULT_COLUMNS))
    summary = {"method": method, "results": [{k: r.get(k) for k in _SUMMARY_KEYS} for r in results.values()]}
    path = write_json(out / f"summary{suffix}.json", summary)
    say(f"results: {out}/<benchmark>{suffix}.json, summary: {path}")
