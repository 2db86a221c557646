"""``clipzss-eval``: score a CLIP-ZSS inference checkpoint on the paper's protocols (paper Sec. 3.4, 4.1-4.2).

Only the student and the stored text embeddings are used (:class:`clipzss.segmenter.ZeroShotSegmenter`): the CLIP
image tower is never built. Class names the checkpoint does not hold (the cross-dataset vocabularies) are encoded
by a text-only CLIP tower (the checkpoint's teacher weights, or ``--text-weights``)::

    clipzss-eval --checkpoint runs/clipzss/voc_zs/checkpoints/clipzss_inference.pt --data-root /data
    clipzss-eval --checkpoint runs/clipzss/cross_coco_stuff --benchmarks cross-dataset --data-root /data

The generic ``eval`` command (``ovcore.cmd.evaluate``, benchmarks of ``ovcore.benchmarks``, mmseg IoU convention).
Zero-shot benchmarks report pAcc, mIoU(S), mIoU(U), hIoU (paper Table 1) from one confusion matrix over all
classes; the cross-dataset ones mIoU and images per second (Table 7). A table is printed and every benchmark's
results are written to ``<output-dir>/<benchmark>.json`` (plus ``summary.json``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovcore.cmd.errors import run_command
from ovcore.cmd.evaluate import EvalOptions

from ._common import ClipZSSModelOptions, load_inference_checkpoint

__all__ = ["ClipZSSEvalConfig", "load_inference_checkpoint", "main", "parse_args", "run"]

PROG = "clipzss-eval"


@dataclass(kw_only=True)
class ClipZSSEvalConfig(ClipZSSModelOptions, EvalOptions):
    """Evaluate a CLIP-ZSS inference checkpoint (student + text embeddings; no CLIP image tower) on the zero-shot
    protocol (voc_zs / coco_stuff_zs / context_zs: pAcc, mIoU(S), mIoU(U), hIoU) or the cross-dataset protocol
    (the groups 'zero-shot' and 'cross-dataset'; pas20 / pc59 / a150: mIoU, images/s). Default benchmark: the one
    the checkpoint was trained on. Under torchrun the images are sharded over the processes and the metrics
    all-reduced."""

    output_dir: str | None = None
    """Where <benchmark>.json and summary.json go; default <run dir>/clipzss-eval for a checkpoint in a run's
    checkpoints/ folder, else <checkpoint folder>/clipzss-eval."""

    test_short_side: int | None = None
    """Test resize: short side in pixels, long side by aspect ratio (ZegCLIP's Resize(2048, 512), min_size 512);
    default the checkpoint's crop size; 0 keeps the original resolution. Scores are compared at the label's size."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        from ovcore.cmd.errors import check_min

        EvalOptions.validate(self)
        check_min("--test-short-side", self.test_short_side, 0)


def _default_output(checkpoint: Path) -> Path:
    # Next to the training run's own eval/iter_*.json, not inside checkpoints/ (which the engine rotates).
    folder = checkpoint.parent
    return (folder.parent if folder.name == "checkpoints" else folder) / "clipzss-eval"


def _default_benchmarks(payload: dict[str, Any]) -> list[str]:
    from ovcore.benchmarks import BENCHMARKS
    from ovcore.cmd.errors import UsageError
    from ovcore.data import DEMO_CLASSES

    name = payload.get("benchmark") or payload["config"].get("dataset")
    if name is None and list(payload["config"].get("class_names") or []) == list(DEMO_CLASSES):
        name = "demo_zs"
    if name not in BENCHMARKS:
        raise UsageError("the checkpoint does not say which benchmark it was trained on: give --benchmarks")
    return [name]


def run(cfg: ClipZSSEvalConfig) -> dict[str, dict[str, Any]]:
    """Evaluate with a parsed config; returns benchmark name -> results.

    Raises:
        UsageError: bad paths or names.
    """
    from dataclasses import replace

    from ovcore.cmd.errors import require_file
    from ovcore.cmd.evaluate import resolve_targets, run_eval
    from ovcore.cmd.log import say

    from ._common import load_clipzss
    from .train import RANDOM_TEACHER_NOTE

    cfg.validate()
    if cfg.benchmarks:
        resolve_targets(cfg.benchmarks)  # a typo is reported before the checkpoint is read
    require_file(cfg.text_weights, "--text-weights")
    loaded = load_inference_checkpoint(cfg.checkpoint) if cfg.checkpoint is not None else None
    defaults = _default_benchmarks(loaded[1]) if loaded is not None else ["demo_zs"]
    if cfg.output_dir is None:
        cfg = replace(cfg, output_dir=str(_default_output(loaded[0]) if loaded is not None else "runs/clipzss_eval"))
    results = run_eval("clipzss", cfg, load=lambda o, device: load_clipzss(o, device, loaded), prog=PROG,
                       default_benchmarks=defaults, iou_convention="mmseg")
    if any(r.get("random_teacher") for r in results.values()) and int(os.environ.get("RANK", "0")) == 0:
        say(f"note: {RANDOM_TEACHER_NOTE}")
    return results


def parse_args(args: Sequence[str] | None = None) -> ClipZSSEvalConfig:
    """Command line -> config (tyro; ``--help`` documents every option)."""
    import tyro

    return tyro.cli(ClipZSSEvalConfig, args=args, prog=PROG)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``clipzss-eval``: 0, 2 after a reported error (one line), 130 after Ctrl-C."""
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command(PROG, lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
