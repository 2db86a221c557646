"""Evaluation loop: run any ``predict_fn`` over a segmentation dataset and score it with :class:`SegEvaluator`.

Protocol (shared by SED and CLIP-ZSS): the scores are resized bilinearly (``align_corners=False``) to the label size
when they differ, argmax is taken over the class channel, and a single confusion matrix is accumulated over the split
(see :mod:`ovcore.metrics` for the mmseg / detectron2 conventions).

Batching: samples are read in dataset order and *consecutive* samples whose image and label shapes match are stacked,
up to ``batch_size``; a sample of a different size closes the current batch. So ``batch_size > 1`` batches fixed-size
datasets fully and falls back to smaller batches (down to 1) on datasets with mixed sizes, never padding or resizing.

Timing: each ``predict_fn`` call is timed with ``time.perf_counter`` (bracketed by ``torch.cuda.synchronize`` on CUDA);
the first ``warmup`` calls are excluded. ``ms_per_image`` is the timed seconds divided by the timed images (amortised
over the batch), and ``images_per_s`` is the model throughput of all processes together
(``world_size * 1000 / ms_per_image``); data loading, resizing and metric updates are not included (``wall_s`` is the
whole loop). Both are None when every call was a warm-up call.

Distributed: with ``distributed=True`` rank ``r`` of ``W`` evaluates indices ``r, r + W, r + 2W, ...`` (like
``DistributedSampler(shuffle=False)`` but without padding duplicates, so every image is scored exactly once), the
confusion matrix and timing counters are all-reduced, every rank returns the same dict, and only rank 0 writes JSON.
"""

from __future__ import annotations

import datetime
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ovcore.files import json_safe, write_json
from ovcore.metrics import IoUConvention, SegEvaluator, _all_reduce_, format_results

# json_safe is re-exported: it lived here before ovcore.files.
__all__ = ["evaluate", "device_name", "json_safe", "shard_indices", "same_size_batches"]

logger = logging.getLogger(__name__)

PredictFn = Callable[[torch.Tensor], torch.Tensor]


def shard_indices(num_samples: int, rank: int, world_size: int) -> list[int]:
    """Indices of one process: a strided split with no padding (shards differ in length by at most one)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return list(range(rank, num_samples, world_size))


def same_size_batches(samples: Iterable[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Group consecutive samples whose image and label shapes are equal into lists of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    buffer: list[dict[str, Any]] = []
    key: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    for sample in samples:
        sample_key = (tuple(sample["image"].shape), tuple(sample["label"].shape))
        if buffer and (sample_key != key or len(buffer) == batch_size):
            yield buffer
            buffer = []
        buffer.append(sample)
        key = sample_key
    if buffer:
        yield buffer


def device_name(device: torch.device | str) -> str:
    """Human-readable name of the device: the CUDA product name, or the CPU model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    # platform.processor() is often just "x86_64" (or "") on Linux; /proc/cpuinfo has the model name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _identity(sample: Any) -> Any:
    # DataLoader with batch_size=None would otherwise run default_convert; samples are already tensors.
    return sample


def _scores_to_pred(scores: torch.Tensor, label_size: tuple[int, int]) -> torch.Tensor:
    if scores.shape[-2:] != label_size:
        if not scores.is_floating_point():
            scores = scores.float()
        scores = F.interpolate(scores, size=label_size, mode="bilinear", align_corners=False)
    return scores.argmax(dim=1)


def evaluate(
    predict_fn: PredictFn,
    dataset: Dataset,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    seen_classes: Sequence[int] | None = None,
    unseen_classes: Sequence[int] | None = None,
    warmup: int = 2,
    output_json: str | Path | None = None,
    progress: bool = True,
    num_workers: int = 0,
    pred_remap: Callable[[torch.Tensor], torch.Tensor] | None = None,
    distributed: bool = False,
    ignore_index: int | None = 255,
    iou_convention: IoUConvention = "mmseg",
) -> dict[str, Any]:
    """Score ``predict_fn`` on ``dataset`` and return (and optionally write) the metrics and timings.

    Args:
        predict_fn: Maps uint8 images ``(B, 3, H, W)`` on ``device`` to per-class scores ``(B, T, h, w)`` (or to an
            ``ovcore.method.Prediction``, whose ``probs`` are the scores, so ``model.predict`` works as is); scores are
            resized to the label size if ``(h, w)`` differs, then argmax over T. T may exceed ``num_classes`` only if
            ``pred_remap`` folds the extra ids (e.g. PAS-20b: T=59, ``num_classes=21``, ``voc20b_collapse``).
        dataset: Map-style dataset of ``{"image": uint8 (3, H, W), "label": int64 (H', W'), "name": str}``.
        num_classes: Number of evaluated classes K.
        class_names: K names for the per-class results (default: ``"0".."K-1"``).
        batch_size: Maximum number of consecutive same-size samples per call (see the module docstring).
        device: Device for images, labels and the confusion matrix (under DDP: this rank's device).
        seen_classes: Seen class ids (adds ``mIoU_seen``/``mIoU_unseen``/``hIoU``).
        unseen_classes: Unseen class ids.
        warmup: Number of leading ``predict_fn`` calls excluded from the timings.
        output_json: Where rank 0 writes the results (parent folders are created).
        progress: Show a tqdm bar (rank 0 only).
        num_workers: DataLoader workers for reading samples.
        pred_remap: Applied to the argmax map before scoring.
        distributed: Shard the dataset over the initialised ``torch.distributed`` group and all-reduce.
        ignore_index: Label value that is not scored.
        iou_convention: ``"mmseg"`` or ``"detectron2"`` (see :mod:`ovcore.metrics`).

    Returns:
        :meth:`SegEvaluator.compute` output (``mIoU``, ``mAcc``, ``pAcc``, ``fwIoU``, ``IoU``/``Acc`` lists, and the
        seen/unseen/hIoU keys for a split) plus ``class_names``, ``per_class_IoU`` / ``per_class_Acc`` (name -> value),
        ``num_classes``, ``num_images``, ``ms_per_image``, ``images_per_s``, ``wall_s``, ``batch_size``,
        ``world_size``, ``device``, ``device_name``, ``iou_convention``, ``timestamp`` (UTC ISO 8601), and
        ``seen_classes`` / ``unseen_classes`` (None without a split). All metrics in
        percent. The JSON holds the same keys, with nan written as null.

    Raises:
        ValueError: On bad arguments, a score map of the wrong shape, or out-of-range labels/predictions.
        RuntimeError: If ``distributed=True`` but ``torch.distributed`` is not initialised.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    device = torch.device(device)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    evaluator = SegEvaluator(
        num_classes,
        ignore_index=ignore_index,
        device=device,
        class_names=names,
        seen_classes=seen_classes,
        unseen_classes=unseen_classes,
        pred_remap=pred_remap,
        iou_convention=iou_convention,
    )
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("evaluate(distributed=True) needs an initialised torch.distributed process group")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    else:
        rank, world_size = 0, 1
    indices = shard_indices(len(dataset), rank, world_size)
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_identity,
        pin_memory=device.type == "cuda",
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else None

    timed_s, timed_images, num_images, calls = 0.0, 0, 0, 0
    start = time.perf_counter()
    bar = tqdm(total=len(indices), desc="evaluate", disable=not progress or rank != 0, dynamic_ncols=True)
    with torch.no_grad():
        for batch in same_size_batches(loader, batch_size):
            images = torch.stack([torch.as_tensor(s["image"]) for s in batch]).to(device, non_blocking=True)
            labels = torch.stack([torch.as_tensor(s["label"]) for s in batch]).to(device, non_blocking=True)
            if sync is not None:
                sync(device)
            t0 = time.perf_counter()
            scores = predict_fn(images)
            # A method's ``predict`` (an ``ovcore.method.Prediction``) scores directly: its probabilities.
            scores = getattr(scores, "probs", scores)
            if sync is not None:
                sync(device)
            elapsed = time.perf_counter() - t0
            if scores.dim() != 4 or scores.shape[0] != len(batch):
                raise ValueError(
                    f"predict_fn must return (B, T, H, W) scores with B={len(batch)}, got {tuple(scores.shape)}"
                )
            if calls >= warmup:
                timed_s += elapsed
                timed_images += len(batch)
            calls += 1
            try:
                evaluator.update(_scores_to_pred(scores, tuple(labels.shape[-2:])), labels)
            except ValueError as err:  # say which images, so a label-convention error can be traced to files
                raise ValueError(f"{err} [samples: {[s.get('name', '?') for s in batch]}]") from err
            num_images += len(batch)
            bar.update(len(batch))
    bar.close()
    wall_s = time.perf_counter() - start

    if world_size > 1:
        evaluator.all_reduce()
        counters = torch.tensor([timed_s, float(timed_images), float(num_images)], dtype=torch.float64)
        _all_reduce_(counters)
        timed_s, timed_images, num_images = counters[0].item(), int(counters[1].item()), int(counters[2].item())
        wall = torch.tensor([wall_s], dtype=torch.float64)
        _all_reduce_(wall, dist.ReduceOp.MAX)
        wall_s = wall.item()

    results = evaluator.compute()
    ms_per_image = 1000.0 * timed_s / timed_images if timed_images else None
    results.update(
        class_names=names,
        per_class_IoU=dict(zip(names, results["IoU"], strict=True)),
        per_class_Acc=dict(zip(names, results["Acc"], strict=True)),
        num_classes=num_classes,
        num_images=num_images,
        ms_per_image=ms_per_image,
        images_per_s=world_size * 1000.0 / ms_per_image if ms_per_image else None,
        seen_classes=evaluator.seen_classes,
        unseen_classes=evaluator.unseen_classes,
        wall_s=wall_s,
        batch_size=batch_size,
        world_size=world_size,
        device=str(device),
        device_name=device_name(device),
        iou_convention=iou_convention,
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    if rank == 0:
        table = format_results(
            results, names, seen_classes=evaluator.seen_classes, unseen_classes=evaluator.unseen_classes
        )
        logger.info("evaluation results\n%s", table)
        if output_json is not None:
            write_json(output_json, results)
    return results
