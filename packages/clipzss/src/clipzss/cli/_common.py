"""CLIP-ZSS's own pieces of its command lines: the inference model's options and loader, the mmseg test resize, the
zero-shot training data.

Everything shared by all methods (errors, logging, ``--vocabulary``, image folders, the benchmark registry, tables,
the generic ``predict`` / ``eval`` commands) lives in ``ovcore.cmd`` and ``ovcore.benchmarks``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ovcore.cmd.errors import UsageError
from ovcore.cmd.options import ModelOptions

__all__ = [
    "INFERENCE_NAME",
    "ClipZSSModelOptions",
    "build_zero_shot",
    "load_clipzss",
    "load_inference_checkpoint",
    "resolve_checkpoint",
    "test_transform",
]


def test_transform(crop_size: int, short_side: int | None) -> Any:
    """mmseg/ZegCLIP test resize: short side to ``short_side`` (default: the crop), long side by aspect ratio.

    ZegCLIP's ``Resize(img_scale=(2048, 512), keep_ratio=True, min_size=512)`` at a 512 crop (ZegCLIP test pipeline); 0
    keeps the original resolution.
    """
    from ovcore.data import MMSegTestTransform

    side = crop_size if short_side is None else short_side
    if side < 0:
        raise UsageError(f"the test short side must be >= 0, got {side}")
    if side == 0:
        return None
    return MMSegTestTransform(scale=(4 * side, side), min_size=side)


def build_zero_shot(bench: Any, root: str | os.PathLike | None, split: str,
                    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None, *,
                    compact_seen: bool = False) -> Any:
    """A zero-shot benchmark's split (``ovcore.benchmarks``); for training (``split="train"``) unseen pixels become
    ignore, and ``compact_seen`` relabels the seen classes ``0..Ns-1`` (ZegCLIP's compact ids).

    Raises:
        FileNotFoundError: missing root or split folder (the message names the ``ovcore`` command that writes it).
        ValueError: unknown split.
    """
    from ovcore.data import ZeroShotDataset, build_dataset

    if bench.dataset != "demo":
        return build_dataset(bench.dataset, root, split, transform, compact_seen=compact_seen)
    # The demo layout has full labels; wrap it like the registered zero-shot datasets.
    base = build_dataset("demo", root, split)
    return ZeroShotDataset(base, bench.split(), train=split == "train", transform=transform, compact=compact_seen)


# ------------------------------------------------------------------------------------------------------- model
INFERENCE_NAME = "clipzss_inference.pt"
"""File name of the inference checkpoint, in ``<output_dir>/checkpoints/`` of a clipzss-train run."""

_INFERENCE = f"inference checkpoint (checkpoints/{INFERENCE_NAME})"


@dataclass(kw_only=True)
class ClipZSSModelOptions(ModelOptions):
    """The options that choose CLIP-ZSS's inference model (read by :func:`load_clipzss`)."""

    checkpoint: str | None = None
    """Inference checkpoint (checkpoints/clipzss_inference.pt written by clipzss-train), or a clipzss-train output
    directory holding one."""

    preset: str | None = None
    """Without --checkpoint: build this model preset (clipzss.list_presets()) with random weights, a pipeline check
    only (e.g. clipzss_tiny_convnext_segformer)."""

    mode: Literal["checkpoint", "slide", "whole"] = "checkpoint"
    """Inference mode: the checkpoint's (its test_mode; 'slide' for the paper presets), 'slide' (crop-size windows,
    stride 426/512 of the crop, ZegCLIP) or 'whole' (the whole resized image at once)."""

    calibration: float | None = None
    """Seen-class calibration gamma subtracted from the logits of the training seen classes (paper Sec. 4.2,
    reading (a)). Default: the checkpoint's value (COCO-Stuff 1.5, VOC / Context 0) on zero-shot benchmarks and 0 on
    the cross-dataset ones, whose classes are neither seen nor unseen."""

    text_weights: str | None = None
    """CLIP weights file (the teacher's, e.g. ViT-B-16 'openai') used to encode class names the checkpoint does not
    hold (cross-dataset vocabularies, free vocabularies) with a text-only tower; default: the checkpoint's own text
    weights or teacher tag (offline, the tag must be in the local cache)."""


def resolve_checkpoint(value: str) -> Path:
    """The inference checkpoint a ``--checkpoint`` value names (a file, or a run folder holding one).

    Raises:
        UsageError: nothing there.
    """
    path = Path(value).expanduser()
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
    from ovcore.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

    from ..segmenter import INFERENCE_FORMAT

    path = resolve_checkpoint(value)
    try:
        # The safe loader (ovcore.safe_load), with damaged files explained in a sentence instead of torch's text.
        payload = load_checkpoint(path)
    except ValueError as err:
        raise UsageError(f"--checkpoint {err}; pass the {_INFERENCE} written by clipzss-train") from err
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        raise UsageError(
            f"--checkpoint {path} is a training checkpoint; pass the inference checkpoint written next to it "
            f"({path.parent / INFERENCE_NAME})"
        )
    if fmt != INFERENCE_FORMAT:
        raise UsageError(f"--checkpoint {path} is not a CLIP-ZSS inference checkpoint (format {fmt!r})")
    return path, payload


def _untrained_payload(preset: str) -> dict[str, Any]:
    """The inference payload of ``preset`` with random weights (teacher and student), for pipeline checks."""
    from .._registry import create_clipzss, get_preset_config, list_presets
    from ..config import replace

    if preset not in list_presets():
        raise UsageError(f"--preset: unknown CLIP-ZSS preset {preset!r}; available: {', '.join(list_presets())}")
    cfg = replace(get_preset_config(preset), teacher__pretrained=None, student__pretrained=False)
    return create_clipzss(cfg).export_inference_state_dict()


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


def load_clipzss(options: ClipZSSModelOptions, device: Any, loaded: tuple[Path, dict[str, Any]] | None = None) -> Any:
    """The loader of ``clipzss-predict`` / ``clipzss-eval``: the student and text embeddings only (no CLIP image
    tower), names the checkpoint lacks encoded by a text-only tower.

    Args:
        options: The parsed options.
        device: Where to put the model.
        loaded: ``(path, payload)`` of an inference checkpoint read already (else read from ``--checkpoint``).

    Returns:
        An ``ovcore.cmd.model.LoadedModel``.

    Raises:
        UsageError: neither --checkpoint nor --preset, or a checkpoint that is not an inference checkpoint.
    """
    from ovcore.cmd.model import LoadedModel

    from ..segmenter import ZeroShotSegmenter

    if loaded is None and options.checkpoint is not None:
        loaded = load_inference_checkpoint(options.checkpoint)
    if loaded is not None:
        path, payload = loaded
        what = f"inference checkpoint {path}"
    elif options.preset is not None:
        payload = _untrained_payload(options.preset)
        what = f"preset {options.preset} with RANDOM weights (a pipeline check: the results are meaningless)"
    else:
        raise UsageError("give --checkpoint (the inference checkpoint written by clipzss-train, or its run folder) "
                         "or --preset NAME for an untrained model")
    seg = ZeroShotSegmenter.from_checkpoint(payload, map_location=device)
    trained_calibration = float(payload["config"].get("seen_calibration", 0.0))
    if options.calibration is not None:
        seg.cfg = dataclasses.replace(seg.cfg, seen_calibration=options.calibration)
    mode = None if options.mode == "checkpoint" else options.mode

    def set_vocabulary(names: list[str]) -> None:
        try:
            if options.text_weights is not None:
                _encode_missing(seg, payload, names, options.text_weights)
            seg.set_vocabulary(names)
        except RuntimeError as err:
            spec = payload["text_encoder"]
            raise UsageError(
                f"cannot encode the class names: {err} (pass --text-weights PATH: the CLIP weights file of the "
                f"teacher, {spec['model_name']} {spec['pretrained']})"
            ) from err

    def before_benchmark(bench: Any) -> dict[str, Any]:
        # Calibration only makes sense for the seen classes of the benchmark the model was trained on.
        default = trained_calibration if bench.zero_shot else 0.0
        calibration = default if options.calibration is None else options.calibration
        seg.cfg = dataclasses.replace(seg.cfg, seen_calibration=calibration)  # read by the segmenter at every call
        return {"mode": mode or seg.cfg.test_mode, "seen_calibration": calibration}

    crop = int(payload["config"].get("crop_size", 512))
    return LoadedModel(
        seg, what, predict_options={"mode": mode}, set_vocabulary=set_vocabulary,
        eval_transform=test_transform(crop, getattr(options, "test_short_side", None)),
        before_benchmark=before_benchmark,
        info={"checkpoint": str(loaded[0]) if loaded is not None else None,
              "random_teacher": payload["text_encoder"].get("pretrained") is None},
    )
