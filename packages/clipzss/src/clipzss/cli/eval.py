"""``clipzss-eval``: score a CLIP-ZSS inference checkpoint on the paper's protocols (spec §3, §4, §5.7).

Only the student and the stored text embeddings are used (:class:`clipzss.segmenter.ZeroShotSegmenter`): the CLIP
image tower is never built. Class names the checkpoint does not hold (the cross-dataset vocabularies) are encoded
by a text-only CLIP tower (the checkpoint's teacher weights, or ``--text-weights``)::

    clipzss-eval --checkpoint runs/clipzss/voc_zs/checkpoints/clipzss_inference.pt --data-root /data
    clipzss-eval --checkpoint runs/clipzss/cross_coco_stuff --benchmarks cross-dataset --data-root /data

Zero-shot benchmarks report pAcc, mIoU(S), mIoU(U), hIoU (paper Table 1) from one confusion matrix over all
classes; the cross-dataset ones mIoU and images per second (Table 7). A table is printed and every benchmark's
results are written to ``<output-dir>/<benchmark>.json`` (plus ``summary.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ovcore.command import run_command
from ovcore.files import write_json

from ._common import UsageError, check_data_root, format_table, json_safe, setup_logging, test_transform
from .benchmarks import BENCHMARKS, Benchmark, EvalChoice, expand_benchmarks

__all__ = ["ClipZSSEvalConfig", "evaluate_checkpoint", "load_inference_checkpoint", "main", "run"]

logger = logging.getLogger(__name__)

PROG = "clipzss-eval"
_INFERENCE = "inference checkpoint (checkpoints/clipzss_inference.pt)"


@dataclass
class ClipZSSEvalConfig:
    """Evaluate a CLIP-ZSS inference checkpoint (student + text embeddings; no CLIP image tower) on the zero-shot
    protocol (voc_zs / coco_stuff_zs / context_zs: pAcc, mIoU(S), mIoU(U), hIoU) or the cross-dataset protocol
    (voc20 / pascal_context_59 / ade20k_150: mIoU, images/s). Under torchrun the images are sharded over the
    processes and the metrics all-reduced."""

    checkpoint: str
    """Inference checkpoint (checkpoints/clipzss_inference.pt written by clipzss-train), or a clipzss-train output
    directory holding one."""

    benchmarks: tuple[EvalChoice, ...] = ()
    """Benchmarks to score, or the groups 'zero-shot' (voc_zs coco_stuff_zs context_zs, Table 1) and
    'cross-dataset' (voc20 pascal_context_59 ade20k_150, Table 7; for a model trained on coco_stuff_zs). demo_zs is
    the demo scenes (6 seen / 2 unseen). Default: the benchmark the checkpoint was trained on."""

    data_root: str | None = None
    """Dataset root holding the prepared layouts (`ovcore prepare ...`, `ovcore demo-data`); default
    $DETECTRON2_DATASETS or ./datasets."""

    output_dir: str | None = None
    """Where <benchmark>.json and summary.json go; default <run dir>/clipzss-eval for a checkpoint in a run's
    checkpoints/ folder, else <checkpoint folder>/clipzss-eval."""

    mode: Literal["checkpoint", "slide", "whole"] = "checkpoint"
    """Inference mode: the checkpoint's (its test_mode; 'slide' for the paper presets), 'slide' (crop-size windows,
    stride 426/512 of the crop, ZegCLIP) or 'whole' (the whole resized image at once)."""

    test_short_side: int | None = None
    """Test resize: short side in pixels, long side by aspect ratio (ZegCLIP's Resize(2048, 512), min_size 512);
    default the checkpoint's crop size; 0 keeps the original resolution. Scores are compared at the label's size."""

    calibration: float | None = None
    """Seen-class calibration gamma subtracted from the logits of the training seen classes (spec §5.6 reading
    (a)). Default: the checkpoint's value (COCO-Stuff 1.5, VOC / Context 0) on zero-shot benchmarks and 0 on the
    cross-dataset ones, whose classes are neither seen nor unseen."""

    text_weights: str | None = None
    """CLIP weights file (the teacher's, e.g. ViT-B-16 'openai') used to encode class names the checkpoint does not
    hold (cross-dataset vocabularies) with a text-only tower; default: the checkpoint's own text weights or
    teacher tag (offline, the tag must be in the local cache)."""

    batch_size: int = 1
    """Images per forward pass (consecutive images of the same size only)."""

    num_workers: int = 2
    """DataLoader workers reading the images."""

    max_images: int | None = None
    """Score only the first N images of each benchmark (quick checks); None: the whole split."""

    warmup: int = 2
    """Leading forward passes excluded from the timings (ms/image, images/s)."""

    device: str = "auto"
    """'auto' (cuda:LOCAL_RANK when CUDA is available, else cpu), 'cpu' or 'cuda'."""

    progress: bool = True
    """Show a progress bar per benchmark."""

    def validate(self) -> None:
        """Check the numeric options before anything is loaded; the messages name the flags."""
        from ovcore.command import check_min

        for option, value, minimum in (
            ("--batch-size", self.batch_size, 1),
            ("--max-images", self.max_images, 1),
            ("--num-workers", self.num_workers, 0),
            ("--warmup", self.warmup, 0),
            ("--test-short-side", self.test_short_side, 0),
        ):
            check_min(option, value, minimum)


# ------------------------------------------------------------------------------------------------------- loading


def _resolve_checkpoint(value: str) -> Path:
    from .train import INFERENCE_NAME

    path = Path(value)
    if path.is_dir():
        for candidate in (path / "checkpoints" / INFERENCE_NAME, path / INFERENCE_NAME):
            if candidate.is_file():
                return candidate
        raise UsageError(f"--checkpoint {path} is a directory without checkpoints/{INFERENCE_NAME}")
    if not path.is_file():
        raise UsageError(f"--checkpoint {path} does not exist")
    return path


def load_inference_checkpoint(value: str) -> tuple[Path, dict[str, Any]]:
    """Find and read an inference checkpoint (``weights_only``).

    Raises:
        UsageError: missing file, or not an inference checkpoint (a training checkpoint is named as such).
    """
    from ovcore.train import CHECKPOINT_FORMAT, load_checkpoint

    from ..segmenter import INFERENCE_FORMAT

    path = _resolve_checkpoint(value)
    try:
        # The safe loader (ovcore.safe_load), with damaged files explained in a sentence instead of torch's text.
        payload = load_checkpoint(path)
    except ValueError as err:
        raise UsageError(f"--checkpoint {err}; pass the {_INFERENCE} written by clipzss-train") from err
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        from .train import INFERENCE_NAME

        raise UsageError(
            f"--checkpoint {path} is a training checkpoint; pass the inference checkpoint written next to it "
            f"({path.parent / INFERENCE_NAME})"
        )
    if fmt != INFERENCE_FORMAT:
        raise UsageError(f"--checkpoint {path} is not a CLIP-ZSS inference checkpoint (format {fmt!r})")
    return path, payload


def _default_benchmarks(payload: dict[str, Any]) -> list[str]:
    from ovcore.data import DEMO_CLASSES

    name = payload.get("benchmark") or payload["config"].get("dataset")
    if name is None and list(payload["config"].get("class_names") or []) == list(DEMO_CLASSES):
        name = "demo_zs"
    if name not in BENCHMARKS:
        raise UsageError("the checkpoint does not say which benchmark it was trained on: give --benchmarks")
    return [name]


def _encode_missing(seg: Any, payload: dict[str, Any], names: list[str], weights: str) -> None:
    """Encode the names the checkpoint lacks with a text-only tower built from ``weights``."""
    from ovcore.clip import get_tokenizer

    from ..text import TextTower, class_embeddings, read_text_weights

    known = set(payload["class_names"])
    missing = [n for n in dict.fromkeys(names) if n not in known]
    if not missing:
        return
    spec = payload["text_encoder"]
    tower = TextTower(spec["model_name"], read_text_weights(weights), quick_gelu=bool(spec.get("quick_gelu", False)))
    emb = class_embeddings(tower, get_tokenizer(spec["model_name"]), missing, spec["templates"], device="cpu")
    seg.add_embeddings(missing, emb)


def _set_vocabulary(seg: Any, payload: dict[str, Any], bench: Benchmark, text_weights: str | None) -> list[str]:
    names = bench.class_names()
    try:
        if text_weights is not None:
            _encode_missing(seg, payload, names, text_weights)
        seg.set_vocabulary(names)
    except RuntimeError as err:
        raise UsageError(
            f"{bench.name}: cannot encode its class names: {err}\n(pass --text-weights PATH: the CLIP weights file "
            f"of the teacher, {payload['text_encoder']['model_name']} {payload['text_encoder']['pretrained']})"
        ) from err
    return names


# ------------------------------------------------------------------------------------------------------- scoring


def evaluate_checkpoint(
    seg: Any, payload: dict[str, Any], bench: Benchmark, dataset: Any, cfg: ClipZSSEvalConfig, device: torch.device
) -> dict[str, Any]:
    """Score one benchmark with the segmenter (its vocabulary and calibration set for the benchmark)."""
    import torch.distributed as dist

    from ovcore.evaluate import evaluate

    names = _set_vocabulary(seg, payload, bench, cfg.text_weights)
    trained_calibration = float(payload["config"].get("seen_calibration", 0.0))
    default = trained_calibration if bench.zero_shot else 0.0
    calibration = default if cfg.calibration is None else cfg.calibration
    seg.cfg = dataclasses.replace(seg.cfg, seen_calibration=calibration)  # read by the segmenter at every call
    split = bench.split()
    mode = None if cfg.mode == "checkpoint" else cfg.mode

    def predict(images: torch.Tensor) -> torch.Tensor:
        return seg.predict(images, mode=mode)

    results = evaluate(
        predict,
        dataset,
        num_classes=len(names),
        class_names=names,
        batch_size=cfg.batch_size,
        device=device,
        seen_classes=split.seen if split is not None else None,
        unseen_classes=split.unseen if split is not None else None,
        warmup=cfg.warmup,
        progress=cfg.progress,
        num_workers=cfg.num_workers,
        distributed=dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1,
        ignore_index=bench.ignore_index(),
        iou_convention="mmseg",
    )
    return {
        "benchmark": bench.name,
        "protocol": "zero-shot" if bench.zero_shot else "cross-dataset",
        "description": bench.description,
        "mode": mode or seg.cfg.test_mode,
        "seen_calibration": calibration,
        **results,
    }


def run(cfg: ClipZSSEvalConfig) -> dict[str, dict[str, Any]]:
    """Evaluate with a parsed config; returns benchmark name -> results.

    Raises:
        UsageError: bad paths or names.
    """
    from torch.utils.data import Subset

    from ovcore.command import check_output_dir, require_file
    from ovcore.train import cleanup, init_distributed

    from ..segmenter import ZeroShotSegmenter

    cfg.validate()
    require_file(cfg.text_weights, "--text-weights")
    path, payload = load_inference_checkpoint(cfg.checkpoint)
    out_dir = Path(cfg.output_dir) if cfg.output_dir is not None else _default_output(path)
    check_output_dir(out_dir, "--output-dir")
    benches = expand_benchmarks(cfg.benchmarks or _default_benchmarks(payload))
    root = check_data_root(cfg.data_root, "--data-root")
    crop = int(payload["config"].get("crop_size", 512))
    transform = test_transform(crop, cfg.test_short_side)
    datasets = {}
    for bench in benches:  # every dataset is found before the first one is scored
        try:
            ds = bench.build(root, "val", transform)
        except FileNotFoundError as err:
            raise UsageError(f"--data-root {root}: {bench.name}: {err}") from err
        if cfg.max_images is not None and len(ds) > cfg.max_images:
            ds = Subset(ds, range(cfg.max_images))
        datasets[bench.name] = ds

    info = init_distributed(cfg.device)
    try:
        seg = ZeroShotSegmenter.from_checkpoint(payload, map_location=info.device)
        results: dict[str, dict[str, Any]] = {}
        for bench in benches:
            res = evaluate_checkpoint(seg, payload, bench, datasets[bench.name], cfg, info.device)
            res = json_safe({"checkpoint": str(path), **res})
            results[bench.name] = res
            if info.is_main:
                write_json(out_dir / f"{bench.name}.json", res)
        if info.is_main:
            rows = list(results.values())
            write_json(out_dir / "summary.json", {"checkpoint": str(path), "results": _summaries(rows)})
            sys.stdout.write(format_table(rows) + "\n")
            if payload["text_encoder"].get("pretrained") is None:
                from .train import RANDOM_TEACHER_NOTE

                sys.stdout.write(f"note: {RANDOM_TEACHER_NOTE}\n")
            sys.stdout.write(f"results: {out_dir}/<benchmark>.json, {out_dir / 'summary.json'}\n")
    finally:
        cleanup(info)
    return results


def _default_output(checkpoint: Path) -> Path:
    # Next to the training run's own eval/iter_*.json, not inside checkpoints/ (which the engine rotates).
    folder = checkpoint.parent
    return (folder.parent if folder.name == "checkpoints" else folder) / "clipzss-eval"


def _summaries(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (
        "benchmark",
        "protocol",
        "num_images",
        "pAcc",
        "mIoU_seen",
        "mIoU_unseen",
        "hIoU",
        "mIoU",
        "images_per_s",
        "ms_per_image",
        "mode",
        "seen_calibration",
    )
    return [{k: row.get(k) for k in keys} for row in rows]


def parse_args(args: Sequence[str] | None = None) -> ClipZSSEvalConfig:
    """Command line -> config (tyro; ``--help`` documents every option)."""
    import tyro

    return tyro.cli(ClipZSSEvalConfig, args=args, prog=PROG)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``clipzss-eval``."""
    setup_logging()
    code = run_command(PROG, lambda: run(parse_args(argv)))
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
