"""TensorBoard logging of the training engine: scalars, per-class IoU and validation overlays (rank 0 only).

Under ``<output_dir>/tensorboard``:

* ``train/<loss>``, ``train/lr``, ... every ``log_every`` iterations (the records of ``metrics.jsonl``);
* ``eval/<metric>``: every number of an evaluation's results (mIoU, pAcc, ms_per_image, ...);
* ``val/iou/<class>``: the per-class IoU of an evaluation (``per_class_IoU`` of ``ovcore.evaluate``), plus the
  whole table as text under ``val/per_class_iou``;
* ``val/overlay/<i>``: a few validation images with the model's prediction (top) and the ground truth (bottom),
  drawn by ``ovcore.vis.render_overlay``, from a visualisation function such as :func:`validation_overlays`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["VisualizeFn", "class_tag", "log_eval", "log_images", "open_writer", "validation_overlays"]

VisualizeFn = Callable[[Any, int], Sequence[Any]]
"""``visualize_fn(model, iteration) -> images`` (PIL images or uint8 ``(H, W, 3)`` arrays), called after each
evaluation when TensorBoard is on; the model is in eval mode under ``torch.no_grad``."""


def open_writer(directory: str | Path, purge_step: int | None = None) -> Any:
    """A ``SummaryWriter`` on ``directory``, or None (with a warning) when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # tensorboard is a dependency of ovcore, but a trimmed environment may lack it
        logger.warning("TensorBoard logging is off: %s (install tensorboard, or pass --no-tensorboard)", err)
        return None
    return SummaryWriter(str(directory), purge_step=purge_step)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def class_tag(name: str) -> str:
    """A class name as a tag component: its first synonym with anything but letters, digits, ``-``, ``_`` and ``.``
    replaced by ``_``."""
    first = name.split(",")[0].strip()
    return re.sub(r"[^\w.-]+", "_", first).strip("_") or "class"


def log_eval(writer: Any, results: Mapping[str, Any], iteration: int) -> None:
    """Log an evaluation: its numbers as ``eval/<key>``, its per-class IoU as ``val/iou/<class>`` and a text table."""
    for key, value in results.items():
        if _number(value):
            writer.add_scalar(f"eval/{key}", value, iteration)
    per_class = results.get("per_class_IoU")
    if not isinstance(per_class, Mapping):
        return
    seen: dict[str, int] = {}
    rows = []
    for name, value in per_class.items():
        tag = class_tag(str(name))
        seen[tag] = seen.get(tag, 0) + 1
        if seen[tag] > 1:  # two entries with the same first synonym keep apart
            tag = f"{tag}_{seen[tag]}"
        if _number(value):
            writer.add_scalar(f"val/iou/{tag}", value, iteration)
        rows.append(f"| {name} | {value:.2f} |" if _number(value) else f"| {name} | - |")
    if rows:
        writer.add_text("val/per_class_iou", "| class | IoU |\n| --- | --- |\n" + "\n".join(rows), iteration)


def log_images(writer: Any, images: Sequence[Any], iteration: int, prefix: str = "val/overlay") -> None:
    """Log images (PIL or uint8 ``(H, W, 3)``) as ``<prefix>/<i>``."""
    for i, image in enumerate(images):
        array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        writer.add_image(f"{prefix}/{i}", array, iteration, dataformats="HWC")


def _stack(top: Any, bottom: Any) -> Any:
    from PIL import Image

    canvas = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height + 6), (255, 255, 255))
    canvas.paste(top, (0, 0))
    canvas.paste(bottom, (0, top.height + 6))
    return canvas


def validation_overlays(dataset: Any, class_names: Sequence[str], *, num_images: int = 4,
                        predict_options: Mapping[str, Any] | None = None, ignore_index: int | None = None,
                        min_side: int = 192) -> VisualizeFn:
    """A visualisation function drawing the first ``num_images`` samples of ``dataset``: the model's prediction over
    ``class_names`` above the ground truth, each with the image and a legend.

    Args:
        dataset: Samples ``{"image": uint8 (3, H, W), "label": (H, W)}`` (the evaluation set).
        class_names: The vocabulary to predict with (the model's own is restored afterwards).
        num_images: How many samples to draw.
        predict_options: Keyword arguments of ``model.predict`` (SED's CER ``k``).
        ignore_index: Label value left uncoloured in the ground truth.
        min_side: Small images are enlarged to this short side for legibility.
    """
    names = list(class_names)
    count = min(num_images, len(dataset))
    options = dict(predict_options or {})

    def visualize(model: Any, iteration: int) -> list[Any]:
        from ovcore.cmd.model import as_prediction
        from ovcore.vis import render_overlay

        previous = list(getattr(model, "class_names", []) or [])
        if previous != names:
            model.set_vocabulary(names)
        images = []
        try:
            for i in range(count):
                sample = dataset[i]
                pred = as_prediction(model.predict(sample["image"][None], **options), names)
                rgb = sample["image"].permute(1, 2, 0).cpu().numpy()
                top = render_overlay(rgb, pred.labels[0].cpu().numpy(), names, min_side=min_side,
                                     title=f"prediction (iteration {iteration})")
                images.append(_with_truth(top, rgb, sample.get("label"), names, ignore_index, min_side))
        finally:
            if previous and previous != names:
                model.set_vocabulary(previous)
        return images

    return visualize


def _with_truth(top: Any, rgb: np.ndarray, label: Any, names: list[str], ignore_index: int | None,
                min_side: int) -> Any:
    """``top`` with the ground-truth overlay below it (``top`` alone when the labels do not fit the vocabulary)."""
    from ovcore.vis import render_overlay

    if label is None:
        return top
    labels = np.asarray(label.cpu() if hasattr(label, "cpu") else label)
    if labels.shape != rgb.shape[:2]:  # test transforms resize the image only (scored at the label's size)
        from PIL import Image

        resized = Image.fromarray(labels.astype(np.int32)).resize((rgb.shape[1], rgb.shape[0]), Image.NEAREST)
        labels = np.asarray(resized)
    try:
        truth = render_overlay(rgb, labels, names, min_side=min_side, title="ground truth", ignore_index=ignore_index)
    except ValueError:  # e.g. PAS-20b's labels count beyond the names it predicts with
        return top
    return _stack(top, truth)
