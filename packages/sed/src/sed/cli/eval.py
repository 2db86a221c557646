"""``sed-eval``: the six benchmarks of the official ``eval.sh`` (or any registered dataset), with or without CER.

    sed-eval --checkpoint runs/sed_b/checkpoints/ckpt_0080000.pt                   # all six, plain decoder
    sed-eval --official-checkpoint sed_model_base.pth --benchmarks a150 pc59 --topk 8   # SED-fast
    sed-eval --checkpoint ckpt.pt --benchmarks a150 --topk 1 2 4 8 none   # CER trade-off: table + cer_sweep.png
    torchrun --nproc-per-node 4 -m sed.cli.eval --checkpoint ... --benchmarks all  # images sharded over 4 GPUs

The generic ``eval`` command (``ovcore.cmd.evaluate``, benchmarks of ``ovcore.benchmarks``) with SED's weight sources
and protocol (official SED ``sed/sed_model.py`` and ``eval.sh``): short side 640 (SEDTestTransform), the model's own
warp to 768, class-attention pooling 1 (eval.sh's ``POOLING_SIZES [1,1]``), probabilities resized to the label size,
argmax, detectron2 IoU convention; PAS-20b predicts over 59 names and counts ids >= 20 as background. Prints a table
and writes ``<output-dir>/<benchmark>[_cer<k>].json`` per benchmark plus ``summary[_cer<k>].json``. Several
``--topk`` values sweep CER on the same model and images (``sed.cli.cer_sweep``): a trade-off table, and
``cer_sweep.json`` plus ``cer_sweep.png`` (mIoU against ms per image and against classes kept per stage).
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

    topk: tyro.conf.Suppress[int | None] = None  # set from --topk (cer_topk) for each evaluation

    cer_topk: Annotated[
        tuple[str, ...],
        tyro.conf.arg(
            name="topk",
            metavar="K [K ...]",
            help="Category early rejection: keep the top-k classes per pixel (SED-fast, eval.sh's fast version: 8); "
            "0 or 'none' turns it off; default the preset's (off; 8 for the _fast presets). Several values (e.g. "
            "--topk 1 2 4 8 none) sweep the speed / accuracy trade-off on the same images: a table, cer_sweep.json "
            "and cer_sweep.png in --output-dir.",
            help_behavior_hint="(default: the preset's)",
        ),
    ] = ()

    pooling: int | None = 1  # overrides the preset's: evaluate as eval.sh does
    """Class-attention pooling at evaluation (eval.sh: 1; training uses 2)."""

    output_dir: str | None = "runs/sed_eval"
    """Folder for the per-benchmark results JSON and summary JSON."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        from sed.cli.cer_sweep import parse_topk

        parse_topk(self.cer_topk)
        SEDModelOptions.validate(self)
        EvalOptions.validate(self)


def parse(argv: Sequence[str] | None = None) -> EvalConfig:
    """Command line -> options."""
    return tyro.cli(EvalConfig, args=argv, prog=PROG)


def run(cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    """Body of ``sed-eval``; returns the results per benchmark name (``<benchmark>_cer<k>`` keys for a sweep)."""
    from dataclasses import replace

    from ovcore.cmd.evaluate import run_eval
    from sed.cli._common import load_sed
    from sed.cli.cer_sweep import parse_topk

    cfg.validate()
    names = tuple("open-vocabulary" if b.strip().lower() == "all" else b for b in cfg.benchmarks)
    ks = parse_topk(cfg.cer_topk)
    if len(ks) > 1:
        return _sweep(replace(cfg, benchmarks=names), ks)
    return run_eval("sed", replace(cfg, benchmarks=names, topk=ks[0]), load=load_sed, prog=PROG,
                    iou_convention="detectron2")


def _sweep(cfg: EvalConfig, ks: list[int | None]) -> dict[str, dict[str, Any]]:
    """Score every CER k with one model (built once) and write the trade-off table, JSON and plot."""
    from dataclasses import replace
    from pathlib import Path

    from ovcore.cmd.evaluate import run_eval
    from ovcore.cmd.log import say
    from ovcore.train.distributed import cleanup, init_distributed
    from sed.cli.cer_sweep import format_sweep, sweep_rows, write_sweep

    built: list[tuple[Any, str]] = []

    def load(options: EvalConfig, device: Any) -> Any:
        from sed.cli._common import loaded_sed, model_from_options

        if not built:  # the first k builds the model; the others change only its CER setting
            built.append(model_from_options(options, device))
        return loaded_sed(*built[0], options)

    info = init_distributed(cfg.device)  # one process group for every k (run_eval then leaves it alone)
    try:
        per_k = {k: run_eval("sed", replace(cfg, topk=k), load=load, prog=f"{PROG} (CER {k or 'off'})",
                             iou_convention="detectron2") for k in ks}
        if info.is_main:
            rows = sweep_rows(per_k)
            say("\nCER trade-off (same images and model for every k):")
            say(format_sweep(rows))
            paths = write_sweep(rows, Path(cfg.output_dir or "runs/sed_eval"),
                                {"method": "sed", "weights": built[0][1], "split": cfg.split})
            say(f"trade-off: {paths[0]}, plot: {paths[1]}")
    finally:
        cleanup(info)
    return {f"{b}_cer{k}" if k else b: r for k, per_bench in per_k.items() for b, r in per_bench.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-eval``."""
    from ovcore.cmd.log import setup_logging

    setup_logging()
    return run_command(PROG, lambda: run(parse(argv)))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
