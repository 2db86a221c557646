"""``sed-eval``: the six benchmarks of the official ``eval.sh`` (or any registered dataset), with or without CER.

    sed-eval --checkpoint runs/sed_b/checkpoints/ckpt_0080000.pt                   # all six, plain decoder
    sed-eval --official-checkpoint sed_model_base.pth --benchmarks a150 pc59 --topk 8   # SED-fast
    torchrun --nproc-per-node 4 -m sed.cli.eval --checkpoint ... --benchmarks all  # images sharded over 4 GPUs

The generic ``eval`` command (``ovcore.cmd.evaluate``, benchmarks of ``ovcore.benchmarks``) with SED's weight sources
and protocol (official SED ``sed/sed_model.py`` and ``eval.sh``): short side 640 (SEDTestTransform), the model's own
warp to 768, class-attention pooling 1 (eval.sh's ``POOLING_SIZES [1,1]``), probabilities resized to the label size,
argmax, detectron2 IoU convention; PAS-20b predicts over 59 names and counts ids >= 20 as background. Prints a table
and writes ``<output-dir>/<benchmark>[_cer<k>].json`` per benchmark plus ``summary[_cer<k>].json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import tyro

from ovcore.cmd.errors import run_command
from ovcore.cmd.evaluate import EvalOptions
from sed.cli._common import SEDModelOptions

__all__ = ["EvalConfig", "main", "parse", "run"]

PROG = "sed-eval"


@dataclass(kw_only=True)
class EvalConfig(SEDModelOptions, EvalOptions):
    """Evaluate SED on the open-vocabulary benchmarks of the official eval.sh (mIoU, ms per image)."""

    benchmarks: Annotated[
        tuple[str, ...],
        tyro.conf.arg(
            aliases=("--dataset",),
            help="Benchmarks: a847 pc459 a150 pc59 pas20 pas20b (SED Table 1), 'all' (or 'open-vocabulary') for the "
            "six, any other name of the shared registry (ovcore.benchmarks), or any ovcore.data dataset name (e.g. "
            "coco_stuff_171, demo). --dataset is an alias.",
        ),
    ] = ("all",)

    pooling: int | None = 1  # overrides the preset's: evaluate as eval.sh does
    """Class-attention pooling at evaluation (eval.sh: 1; training uses 2)."""

    output_dir: str | None = "runs/sed_eval"
    """Folder for the per-benchmark results JSON and summary JSON."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        SEDModelOptions.validate(self)
        EvalOptions.validate(self)


def parse(argv: Sequence[str] | None = None) -> EvalConfig:
    """Command line -> options."""
    return tyro.cli(EvalConfig, args=argv, prog=PROG)


def run(cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    """Body of ``sed-eval``; returns the results per benchmark name."""
    from dataclasses import replace

    from ovcore.cmd.evaluate import run_eval
    from sed.cli._common import load_sed

    names = tuple("open-vocabulary" if b.strip().lower() == "all" else b for b in cfg.benchmarks)
    return run_eval("sed", replace(cfg, benchmarks=names), load=load_sed, prog=PROG,
                    iou_convention="detectron2")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-eval``."""
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command(PROG, lambda: run(parse(argv)))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
