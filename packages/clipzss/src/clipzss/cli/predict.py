"""``clipzss-predict``: images plus a free vocabulary -> label-map PNGs and overlays, with a CLIP-ZSS student.

    clipzss-predict photos/ --checkpoint runs/clipzss/voc_zs --vocabulary "cat, dog, grass|lawn"
    clipzss-predict photos/ --checkpoint runs/clipzss/cross_coco_stuff --vocabulary ade20k_150 --batch-size 4

The generic ``predict`` command (``ovcore.cmd.predict``) with CLIP-ZSS's inference model: the student and the text
embeddings of the inference checkpoint (no CLIP image tower); names the checkpoint does not hold are encoded by its
text tower (or ``--text-weights``). Without ``--vocabulary`` the checkpoint's own classes are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ovcore.cmd.errors import run_command
from ovcore.cmd.predict import PredictOptions

from ._common import ClipZSSModelOptions

__all__ = ["ClipZSSPredictConfig", "main", "parse_args", "run"]

PROG = "clipzss-predict"


@dataclass(kw_only=True)
class ClipZSSPredictConfig(ClipZSSModelOptions, PredictOptions):
    """Segment images with a CLIP-ZSS student and a free vocabulary: label maps, overlays, predictions.json."""

    output_dir: str | None = "runs/clipzss_predict"
    """Folder for the label maps, overlays, vocabulary.json and predictions.json."""


def parse_args(args: Sequence[str] | None = None) -> ClipZSSPredictConfig:
    """Command line -> config (tyro; ``--help`` documents every option)."""
    import tyro

    return tyro.cli(ClipZSSPredictConfig, args=args, prog=PROG)


def run(cfg: ClipZSSPredictConfig) -> list[dict[str, Any]]:
    """Body of ``clipzss-predict`` (inputs are checked before the model is built)."""
    from ovcore.cmd.errors import require_file
    from ovcore.cmd.predict import run_predict

    from ._common import load_clipzss

    require_file(cfg.text_weights, "--text-weights")
    return run_predict("clipzss", cfg, load=load_clipzss, prog=PROG)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``clipzss-predict``: 0, 2 after a reported error (one line), 130 after Ctrl-C."""
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command(PROG, lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
