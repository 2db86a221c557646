"""TensorBoard logging of periodic evaluations: per-class IoU scalars, a text table and validation overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ovcore.train.tensorboard import class_tag, log_eval, log_images


class _Recorder:
    """A stand-in SummaryWriter that keeps what it is given."""

    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}
        self.texts: dict[str, str] = {}
        self.images: dict[str, tuple[int, ...]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars[tag] = value

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.texts[tag] = text

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = "CHW") -> None:
        assert dataformats == "HWC"
        self.images[tag] = np.asarray(image).shape


def _events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_log_eval_writes_metrics_per_class_iou_and_a_table() -> None:
    writer = _Recorder()
    results = {"mIoU": 40.0, "num_images": 3, "flag": True, "nan": float("nan"), "class_names": ["a"],
               "per_class_IoU": {"sky": 80.0, "grass, lawn": 0.0, "a cat": float("nan"), "grass, turf": None}}
    log_eval(writer, results, 5)
    assert writer.scalars == {"eval/mIoU": 40.0, "eval/num_images": 3, "val/iou/sky": 80.0, "val/iou/grass": 0.0}
    table = writer.texts["val/per_class_iou"]
    assert "| grass, lawn | 0.00 |" in table and "| a cat | - |" in table


def test_class_tags_are_safe_and_images_are_logged_as_hwc() -> None:
    assert class_tag("traffic light, signal") == "traffic_light"
    assert class_tag("a/b?") == "a_b"
    writer = _Recorder()
    from PIL import Image

    log_images(writer, [Image.new("RGB", (5, 3)), np.zeros((4, 6, 3), np.uint8)], 1)
    assert writer.images == {"val/overlay/0": (3, 5, 3), "val/overlay/1": (4, 6, 3)}


def test_a_failing_visualisation_does_not_stop_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from train_fixtures import RandomSegmentation, TinySegmenter, tiny_config  # tests/train is on sys.path

    from ovcore.train import train

    def broken(model: Any, iteration: int) -> list[Any]:
        raise RuntimeError("no pictures today")

    cfg = tiny_config(tmp_path / "run", max_iters=2, tensorboard=True, eval_every=1)
    result = train(cfg, TinySegmenter, RandomSegmentation(4), evaluate_fn=lambda m, it: {"mIoU": 1.0},
                   visualize_fn=broken)
    assert result.iteration == 2 and "no pictures today" in caplog.text
    assert "eval/mIoU" in _events(tmp_path / "run" / "tensorboard").Tags()["scalars"]


def test_sed_train_logs_overlays_and_per_class_iou(tmp_path: Path) -> None:
    from sed.cli import train as train_cli

    out = tmp_path / "run"
    assert train_cli.main(["--preset", "sed_tiny", "--dataset", "demo", "--output-dir", str(out), "--max-iters", "1",
                           "--batch-size", "2", "--num-workers", "0", "--no-progress", "--eval-max-images", "2"]) == 0
    tags = _events(out / "tensorboard").Tags()
    assert {"val/overlay/0", "val/overlay/1"} <= set(tags["images"])
    assert "eval/mIoU" in tags["scalars"] and "train/loss" in tags["scalars"]
    iou_tags = [t for t in tags["scalars"] if t.startswith("val/iou/")]
    assert iou_tags, tags["scalars"]
    image = _events(out / "tensorboard").Images("val/overlay/0")[-1]
    assert image.step == 1 and image.height > image.width / 4  # prediction stacked above the ground truth

