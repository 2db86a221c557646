"""MaskCLIP's entry into the shared tooling: ``METHOD``, published under the ``ovcore.methods`` entry-point group."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from maskclip._registry import create_maskclip, list_presets
from ovcore.method import MethodSpec

__all__ = ["METHOD", "create", "save"]


def create(preset: str, checkpoint: str | os.PathLike | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
    """``MethodSpec.create``: build a preset; ``checkpoint`` is a CLIP checkpoint (file or state dict), MaskCLIP's
    only weights.

    Raises:
        ValueError: unknown preset or override, or both ``checkpoint`` and ``pretrained`` given.
    """
    if checkpoint is None:
        return create_maskclip(preset, **overrides)
    if "pretrained" in overrides:
        raise ValueError("give the CLIP weights either as checkpoint= or as pretrained=, not both")
    if isinstance(checkpoint, Mapping):
        from ovcore.clip import load_clip_weights

        model = create_maskclip(preset, pretrained=None, **overrides)
        load_clip_weights(model.clip, checkpoint)
        return model
    return create_maskclip(preset, pretrained=checkpoint, **overrides)


def save(model: Any, path: str | os.PathLike) -> None:
    """``MethodSpec.save``: write the CLIP weights (MaskCLIP's only weights), the file ``create(preset,
    checkpoint=path)`` reads back."""
    import torch

    torch.save(model.clip.state_dict(), path)


METHOD = MethodSpec(
    name="maskclip",
    title="MaskCLIP (Zhou et al., ECCV 2022), training-free dense CLIP",
    list_presets=list_presets,
    create=create,
    trainable=False,
    small_preset="maskclip_vit_tiny",
    save=save,
    extras={"paper": "Extract Free Dense Labels from CLIP (ECCV 2022)", "iou_convention": "mmseg"},
)
