"""SED's entry into the shared tooling: ``METHOD``, published under the ``ovcore.methods`` entry-point group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ovcore.method import MethodSpec
from sed._registry import create_sed, list_presets

__all__ = ["METHOD", "create"]


def create(preset: str, checkpoint: str | os.PathLike | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """``MethodSpec.create``: build a SED preset; ``checkpoint`` is a full SED checkpoint (the official detectron2
    ``.pth``, a file written by ``METHOD.save_model`` / ``torch.save(model.state_dict())``, or a state dict).

    Raises:
        ValueError: unknown preset or override, or an unreadable checkpoint.
    """
    return create_sed(preset, checkpoint=checkpoint, **overrides)


METHOD = MethodSpec(
    name="sed",
    title="SED (Xie et al., CVPR 2024), simple encoder-decoder with category early rejection",
    list_presets=list_presets,
    create=create,
    trainable=True,
    small_preset="sed_tiny",
    extras={
        "paper": "SED: A Simple Encoder-Decoder for Open-Vocabulary Semantic Segmentation (CVPR 2024)",
        "iou_convention": "detectron2",
    },
)
