"""Score a MaskCLIP model on a registered ``ovcore.data`` dataset from Python.

The scoring of every ``<method>-eval`` command (``ovcore.cmd.evaluate.score``): the same datasets, class names,
ignore values and PAS-20b rule, with MaskCLIP's own test pipeline (its resize and sliding windows run inside
``predict``, so the dataset is read at its original size).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ovcore.metrics import IoUConvention

__all__ = ["evaluate", "build_eval_dataset"]

logger = logging.getLogger(__name__)

# `ovcore demo-data` writes 64 train / 16 val scenes of 128x128 (seed 0); the in-memory fallback uses the same.
_DEMO_IMAGES = {"train": 64, "val": 16}


def build_eval_dataset(name: str, root: str | os.PathLike | None = None, split: str = "val") -> Dataset:
    """``ovcore.data.build_dataset`` without a transform; ``demo`` without a prepared folder is generated in memory.

    Raises:
        ValueError: unknown dataset or split.
        FileNotFoundError: the dataset is not prepared under ``root``.
    """
    from ovcore.data import DemoSegmentation, build_dataset, default_root

    base = Path(root) if root is not None else default_root()
    if name == "demo" and not (base / "demo" / "images" / split).is_dir():
        if split not in _DEMO_IMAGES:
            raise ValueError(f"demo split must be 'train' or 'val', got {split!r}")
        logger.info("no prepared demo data under %s: generating the demo %s split in memory", base, split)
        return DemoSegmentation(num_images=_DEMO_IMAGES[split], size=128, split=split)
    return build_dataset(name, base, split)


def evaluate(
    model: Any,
    dataset_name: str,
    root: str | os.PathLike | None = None,
    split: str = "val",
    *,
    max_images: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    iou_convention: IoUConvention = "mmseg",
    output_json: str | os.PathLike | None = None,
    progress: bool = False,
    warmup: int = 2,
    num_workers: int = 0,
) -> dict[str, Any]:
    """mIoU (and the rest of ``ovcore.evaluate``'s results) of ``model`` on a registered dataset.

    The model's vocabulary is switched to the dataset's class names for the run and restored afterwards; the
    scoring is ``ovcore.cmd.evaluate.score``, the one every ``<method>-eval`` command uses.

    Args:
        model: A MaskCLIP model (any object with ``predict``, ``set_vocabulary`` and ``class_names`` works).
        dataset_name: An ``ovcore.data`` dataset (``pascal_context_59``, ``ade20k_150``, ``voc20``, ``demo``...).
        root: Dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``).
        split: ``"val"`` or ``"train"``.
        max_images: Evaluate only the first N images (a quick check, not comparable with published figures).
        batch_size: Consecutive same-size images per ``predict`` call.
        device: Where images and the confusion matrix live (default: the model's device).
        iou_convention: ``"mmseg"`` (default: the protocol of the published training-free tables) or
            ``"detectron2"`` (SED's tables); see ``ovcore.metrics``.
        output_json: Also write the results there.
        progress: Show a progress bar.
        warmup: Leading ``predict`` calls left out of the timing.
        num_workers: DataLoader workers reading images.

    Returns:
        ``ovcore.evaluate.evaluate``'s dict plus ``dataset``, ``split``, ``vocabulary_size``, ``stats_mean`` (the
        mean of the per-image ``predict`` statistics) and ``preset``.

    Raises:
        ValueError: unknown dataset, bad ``max_images`` or a bad argument of ``ovcore.evaluate``.
        FileNotFoundError: the dataset is not prepared under ``root``.
    """
    from ovcore.benchmarks import Benchmark
    from ovcore.cmd.evaluate import first_images, score
    from ovcore.cmd.model import LoadedModel

    # A dataset as an ad-hoc benchmark: its class names, ignore value and PAS-20b remap, as `maskclip-eval` scores it.
    protocol = Benchmark(dataset_name, dataset_name, dataset_name).protocol()
    dataset = first_images(build_eval_dataset(dataset_name, root, split), max_images, "max_images")
    if device is None:
        device = next(iter(model.buffers()), torch.empty(0)).device
    preset = getattr(getattr(model, "cfg", None), "name", None)
    results = score(
        LoadedModel(model, f"preset {preset}"),
        dataset,
        protocol,
        device=device,
        batch_size=batch_size,
        warmup=warmup,
        progress=progress,
        num_workers=num_workers,
        iou_convention=iou_convention,
    )
    results.update(split=split, preset=preset)
    if output_json is not None:
        from ovcore.files import write_json

        write_json(output_json, results)
    return results
