"""``maskclip-predict`` and ``maskclip-eval``: the generic commands of ``ovcore.cmd`` for MaskCLIP.

    maskclip-predict photos/ --preset maskclip_vit_b16 --vocabulary "cat, dog, grass|lawn"
    maskclip-eval --preset maskclip_vit_b16 --benchmarks pc59 a150 --data-root datasets

MaskCLIP trains nothing: ``--preset`` picks the CLIP model and test pipeline, ``--checkpoint`` optionally gives a
local CLIP weights file instead of the preset's open_clip tag. Evaluation uses the mmseg IoU convention of the
published training-free tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovcore.cmd.errors import run_command
from ovcore.cmd.evaluate import EvalOptions
from ovcore.cmd.predict import PredictOptions

__all__ = ["MaskCLIPEvalConfig", "MaskCLIPPredictConfig", "eval_main", "predict_main"]


@dataclass(kw_only=True)
class _MaskCLIPModel:
    preset: str | None = "maskclip_vit_b16"
    """MaskCLIP preset (maskclip.list_presets(): the CLIP model and the test pipeline)."""

    checkpoint: str | None = None
    """A local CLIP weights file (.pt / .bin / .safetensors) instead of the preset's open_clip tag."""


@dataclass(kw_only=True)
class MaskCLIPPredictConfig(_MaskCLIPModel, PredictOptions):
    """Segment images with MaskCLIP (training-free dense CLIP) and a free vocabulary: label maps, overlays."""

    output_dir: str | None = "runs/maskclip_predict"
    """Folder for the label maps, overlays, vocabulary.json and predictions.json."""


@dataclass(kw_only=True)
class MaskCLIPEvalConfig(_MaskCLIPModel, EvalOptions):
    """Evaluate MaskCLIP on benchmarks of the shared registry (mmseg IoU convention)."""

    output_dir: str | None = "runs/maskclip_eval"
    """Folder for the per-benchmark results JSON and summary JSON."""


def _method() -> Any:
    from maskclip.method import METHOD

    return METHOD


def predict_main(argv: Sequence[str] | None = None) -> int:
    """Console script ``maskclip-predict``."""
    import tyro

    from ovcore.cmd.log import setup_logging
    from ovcore.cmd.predict import run_predict

    setup_logging()
    return run_command("maskclip-predict", lambda: run_predict(
        _method(), tyro.cli(MaskCLIPPredictConfig, args=argv, prog="maskclip-predict")))


def eval_main(argv: Sequence[str] | None = None) -> int:
    """Console script ``maskclip-eval``."""
    import tyro

    from ovcore.cmd.evaluate import run_eval
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command("maskclip-eval", lambda: run_eval(
        _method(), tyro.cli(MaskCLIPEvalConfig, args=argv, prog="maskclip-eval"), default_benchmarks=("demo",),
        iou_convention="mmseg"))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(predict_main())
