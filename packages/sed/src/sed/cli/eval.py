"""``sed-eval``: the six benchmarks of the official ``eval.sh`` (or any registered dataset), with or without CER.

    sed-eval --checkpoint runs/sed_b/checkpoints/ckpt_0080000.pt                   # all six, plain decoder
    sed-eval --official-checkpoint sed_model_base.pth --benchmarks a150 pc59 --topk 8   # SED-fast
    torchrun --nproc-per-node 4 -m sed.cli.eval --checkpoint ... --benchmarks all  # images sharded over 4 GPUs

Protocol (spec §7, Appendix B): short side 640 (SEDTestTransform), the model's own warp to 768, class-attention
pooling 1 (eval.sh's ``POOLING_SIZES [1,1]``), probabilities resized to the label size, argmax, detectron2 IoU
convention; PAS-20b predicts over 59 names and counts ids >= 20 as background. Prints a table of mIoU and ms per
image and writes ``<output-dir>/<benchmark>[_cer<k>].json`` per benchmark plus ``summary[_cer<k>].json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from ovcore.command import run_command
from sed.cli._common import (
    BENCHMARKS,
    ModelOptions,
    build_split,
    eval_protocol,
    eval_transform,
    evaluate_model,
    first_images,
    fmt,
    load_model_from,
    quiet_logger,
    resolve_benchmarks,
    say,
    setup_logging,
    write_json,
)

__all__ = ["EvalConfig", "main"]

_SHORT = " ".join(f"{k} ({t}: {d})" for k, (d, t) in BENCHMARKS.items())


@dataclass
class EvalConfig(ModelOptions):
    """Evaluate SED on the open-vocabulary benchmarks of the official eval.sh (mIoU, ms per image)."""

    benchmarks: Annotated[
        tuple[str, ...],
        tyro.conf.arg(
            aliases=("--dataset",),
            help=f"Benchmarks by short name: {_SHORT}; 'all' for the six; or any ovcore.data dataset name (e.g. "
            "coco_stuff_171, demo). --dataset is an alias.",
        ),
    ] = ("all",)

    data_root: str | None = None
    """Dataset root holding the prepared benchmarks (default: $DETECTRON2_DATASETS or ./datasets)."""

    split: str = "val"
    """Split to evaluate."""

    pooling: int = 1  # overrides ModelOptions' None: evaluate as eval.sh does, whatever the preset says
    """Class-attention pooling at evaluation (eval.sh: 1; training uses 2)."""

    max_images: int | None = None
    """Evaluate only the first N images of each benchmark (a quick check; not comparable with the paper)."""

    output_dir: str = "runs/sed_eval"
    """Folder for the per-benchmark results JSON and summary JSON."""

    device: str = "auto"
    """'auto' (cuda:LOCAL_RANK when CUDA is available, else cpu), 'cpu' or 'cuda'."""

    num_workers: int = 2
    """DataLoader workers reading and resizing images."""

    warmup: int = 2
    """Leading images per benchmark left out of the timing."""

    progress: bool = True
    """Show a progress bar."""

    per_class: bool = False
    """Also print the per-class IoU / accuracy table of every benchmark (it is always in the JSON)."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        from ovcore.command import check_min

        super().validate()
        for option, value, minimum in (
            ("--max-images", self.max_images, 1),
            ("--num-workers", self.num_workers, 0),
            ("--warmup", self.warmup, 0),
        ):
            check_min(option, value, minimum)


def run(cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    """Body of ``sed-eval``; returns the results per benchmark key."""
    from ovcore.command import check_output_dir
    from ovcore.train import cleanup, init_distributed

    cfg.validate()
    benchmarks = resolve_benchmarks(cfg.benchmarks, "--benchmarks")
    check_output_dir(cfg.output_dir, "--output-dir")
    fallback = cfg.data_root is None  # a root the user named must hold the data
    for bench in benchmarks:  # every benchmark's files are found before the model is built
        if not (fallback and bench.dataset == "demo"):  # (the built-in demo scenes need no files)
            build_split(bench.dataset, cfg.data_root, cfg.split, memory_fallback=False)
    info = init_distributed(cfg.device, "auto")
    try:
        model, what, topk = load_model_from(cfg, info.device)
        suffix = f"_cer{topk}" if topk else ""
        out = Path(cfg.output_dir)
        if info.is_main:
            say(f"sed-eval: {what}")
            say(f"  CER {'top-' + str(topk) if topk else 'off'}, pooling {cfg.pooling}, test short side "
                f"{model.cfg.test_short_side or 'original'}, {info.world_size} process(es) on {info.device}")
        all_results: dict[str, dict[str, Any]] = {}
        for bench in benchmarks:
            protocol = eval_protocol(bench.dataset)
            dataset = build_split(bench.dataset, cfg.data_root, cfg.split, eval_transform(model.cfg),
                                  memory_fallback=fallback)
            dataset = first_images(dataset, cfg.max_images, "--max-images")
            if info.is_main:
                say(f"{bench.title}: {len(dataset)} images, {len(protocol.vocabulary)} class names")
            with quiet_logger("ovcore.evaluate", not cfg.per_class):
                results = evaluate_model(
                    model, dataset, protocol, topk=topk, device=info.device, progress=cfg.progress and info.is_main,
                    distributed=info.world_size > 1, warmup=cfg.warmup, num_workers=cfg.num_workers,
                )
            results.update(benchmark=bench.title, weights=what, pooling=cfg.pooling, split=cfg.split)
            if info.is_main:
                write_json(out / f"{bench.key}{suffix}.json", results)
            all_results[bench.key] = results
        if info.is_main:
            _report(benchmarks, all_results, out, suffix, topk)
        return all_results
    finally:
        cleanup(info)


def _report(benchmarks: Sequence[Any], results: dict[str, dict[str, Any]], out: Path, suffix: str,
            topk: int | None) -> None:
    rows = [("benchmark", "dataset", "images", "mIoU", "pAcc", "ms/img", "results")]
    for b in benchmarks:
        r = results[b.key]
        rows.append((b.title, b.dataset, str(r["num_images"]), fmt(r["mIoU"]), fmt(r["pAcc"]),
                     fmt(r["ms_per_image"]), str(out / f"{b.key}{suffix}.json")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    say("")
    say(f"SED results ({'CER top-' + str(topk) if topk else 'plain decoder'}, detectron2 IoU convention):")
    for i, row in enumerate(rows):
        cells = (c.ljust(w) if j in (0, 1, 6) else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
        say("  " + "  ".join(cells))
        if i == 0:
            say("  " + "  ".join("-" * w for w in widths))
    summary = {b.key: {k: results[b.key].get(k) for k in ("benchmark", "dataset", "mIoU", "pAcc", "mAcc", "fwIoU",
                                                          "num_images", "ms_per_image", "images_per_s")}
               for b in benchmarks}
    path = write_json(out / f"summary{suffix}.json", {"cer_topk": topk, "benchmarks": summary})
    say(f"summary: {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-eval``."""
    setup_logging()
    return run_command("sed-eval", lambda: run(tyro.cli(EvalConfig, args=argv, prog="sed-eval")))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
