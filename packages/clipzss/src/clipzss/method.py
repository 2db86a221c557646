"""CLIP-ZSS's entry into the shared tooling: ``METHOD``, published under the ``ovcore.methods`` entry-point group.

Two models stand behind one preset name: without a checkpoint ``create`` builds the training wrapper
:class:`clipzss.model.CLIPZSS` (student + frozen CLIP teacher + losses); with an inference checkpoint (the
``clipzss_inference.pt`` that ``clipzss-train`` writes, or ``METHOD.save_model``'s file) it gives the
:class:`clipzss.segmenter.ZeroShotSegmenter` (student + text embeddings, no CLIP image tower). Both implement
``predict`` / ``set_vocabulary`` / ``class_names`` of ``ovcore.method.SegmentationModel``; the segmenter's ``forward``
raises ``RuntimeError`` (inference only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from clipzss._registry import create_clipzss, list_presets
from ovcore.method import MethodSpec

__all__ = ["METHOD", "create", "save"]


def _read(checkpoint: str | os.PathLike | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        return checkpoint
    from ovcore.train.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


def create(
    preset: str,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    device: Any = "cpu",
    **overrides: Any,
) -> Any:
    """``MethodSpec.create``: the training wrapper of ``preset``, or the inference model of a checkpoint.

    Args:
        preset: A CLIP-ZSS preset (``clipzss.list_presets()``).
        checkpoint: None (a fresh wrapper), an inference checkpoint (-> ``ZeroShotSegmenter``; it carries its own
            config), or a training checkpoint / state dict of the wrapper (-> ``CLIPZSS`` with those weights).
        device: Where to put the model.
        **overrides: Config fields of the wrapper (not allowed with an inference checkpoint).

    Raises:
        ValueError: unknown preset or field, an unreadable checkpoint, weights that do not fit the preset, or
            overrides given with an inference checkpoint.
    """
    if checkpoint is None:
        return create_clipzss(preset, **overrides).to(device)
    from ovcore.hub import is_pretrained_source

    if is_pretrained_source(checkpoint):
        # The Hub layout of ovcore.hub (hf-hub:org/repo or a saved folder) always holds the inference model.
        from ._registry import create_segmenter

        if overrides:
            raise ValueError(f"{checkpoint} holds an inference model with its own config; drop {sorted(overrides)}")
        return create_segmenter(checkpoint, map_location=device)
    from ovcore.train.checkpoint import CHECKPOINT_FORMAT, state_dict_mismatch

    from .segmenter import INFERENCE_FORMAT, ZeroShotSegmenter

    payload = _read(checkpoint)
    where = "the state dict" if isinstance(checkpoint, Mapping) else str(checkpoint)
    if not isinstance(payload, Mapping):
        raise ValueError(f"{where} holds a {type(payload).__name__}, not a CLIP-ZSS checkpoint or state dict")
    if payload.get("format") == INFERENCE_FORMAT:
        if overrides:
            raise ValueError(
                f"an inference checkpoint carries its own config: the overrides {sorted(overrides)} cannot apply; "
                "pass none (predict options such as mode= go to predict)"
            )
        return ZeroShotSegmenter.from_checkpoint(dict(payload), map_location=device)
    state = payload["model"] if payload.get("format") == CHECKPOINT_FORMAT else payload
    model = create_clipzss(preset, **overrides)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # torch lists every key over many lines: the first difference says enough
        raise ValueError(
            f"{where} does not fit CLIP-ZSS preset {preset!r} ({state_dict_mismatch(err)}); pass the preset (and "
            "overrides) the weights were trained with"
        ) from None
    return model.to(device)


def save(model: Any, path: str | os.PathLike) -> None:
    """``MethodSpec.save``: write the inference checkpoint of a wrapper or a segmenter (``create(preset,
    checkpoint=path)`` reads it back as a ``ZeroShotSegmenter``)."""
    from ovcore.train.checkpoint import atomic_save

    atomic_save(model.export_inference_state_dict(), path)


METHOD = MethodSpec(
    name="clipzss",
    title='CLIP-ZSS (Chen et al., "CLIP is Also a Good Teacher"), zero-shot segmentation with a CLIP teacher',
    list_presets=list_presets,
    create=create,
    trainable=True,
    small_preset="clipzss_tiny_convnext_segformer",
    save=save,
    extras={
        "paper": "CLIP is Also a Good Teacher: A New Learning Framework for Inductive Zero-shot Semantic Segmentation "
        "(arXiv 2310.02296)",
        "iou_convention": "mmseg",
    },
)
