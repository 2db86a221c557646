"""Preset registry: a preset name maps to its config (data); ``create_clipzss(name, ...)`` builds the model.

The shape shared by every method package (root README, "Adding a method"): one entry per ``model_configs/*.json``
file, plus ``@register_preset`` for presets written in Python, whose function returns a :class:`CLIPZSSConfig`.
``create_clipzss(name, **overrides)`` builds the training wrapper, ``create_segmenter(checkpoint)`` the inference
model. Overrides use dotted (or double-underscore) names for nested fields: ``plm__fusion_threshold=0.9`` or
``plm={"fusion_threshold": 0.9}``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovcore.registry import PresetRegistry

from .config import CLIPZSSConfig, replace

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATASET_DEFAULTS",
    "create_clipzss",
    "create_segmenter",
    "get_preset_config",
    "is_preset",
    "list_presets",
    "register_clipzss_preset",
    "register_preset",
]


def _import_presets() -> None:
    # The preset module registers on import; importing it here keeps the package import free of it.
    from . import presets  # noqa: F401


# A later registration of the same name wins, with a warning (user presets may override built-ins).
_PRESETS: PresetRegistry[Callable[[], CLIPZSSConfig]] = PresetRegistry(
    "CLIP-ZSS preset", allow_overwrite=True, populate=_import_presets
)

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # ZegCLIP's configs: the single template with raw VOC names; 15-template ensemble for COCO-Stuff / Context.
    # Paper Sec. 4.2 gamma, reading (a) (package README): seen calibration, 1.5 on COCO-Stuff, 0 on VOC and Context.
    "voc_zs": {"teacher__templates": "zegclip_single", "seen_calibration": 0.0},
    "coco_stuff_zs": {"teacher__templates": "zegclip", "seen_calibration": 1.5},
    "context_zs": {"teacher__templates": "zegclip", "seen_calibration": 0.0},
}
"""Per-dataset defaults applied when ``dataset=`` is given (before the caller's overrides)."""


register_preset = _PRESETS.register
"""Decorator: register a preset written in Python, a function taking no arguments and returning a
:class:`CLIPZSSConfig`, under its function name (a later registration of a name replaces the earlier one with a
warning); ``create_clipzss(name)`` then builds it::

    @clipzss.register_preset
    def clipzss_swin_b_upernet_in22k() -> clipzss.CLIPZSSConfig:
        return clipzss.get_preset_config("clipzss_swin_b_upernet", student__pretrained="ms_in22k")
"""
register_clipzss_preset = _PRESETS.add
"""Register a config function under a given name (each JSON config in ``model_configs/`` is registered so)."""


def list_presets(pattern: str = "*") -> list[str]:
    """Registered preset names matching an fnmatch pattern."""
    return _PRESETS.names(pattern)


def is_preset(name: str) -> bool:
    """Whether ``name`` is a registered preset."""
    return name in _PRESETS


def get_preset_config(name: str, **overrides: Any) -> CLIPZSSConfig:
    """A preset's config with dataset defaults and overrides applied.

    Args:
        name: Preset name (:func:`list_presets`).
        **overrides: Config fields; ``dataset="voc_zs"`` also applies :data:`DATASET_DEFAULTS`.

    Raises:
        ValueError: unknown preset or field.
    """
    cfg = _PRESETS.config(name, CLIPZSSConfig, builder="create_clipzss")
    dataset = overrides.get("dataset")
    if dataset is not None:
        cfg = replace(cfg, **{**DATASET_DEFAULTS.get(dataset, {}), "class_names": [], "seen_classes": []})
    return replace(cfg, **overrides) if overrides else cfg


def create_clipzss(name_or_cfg: str | CLIPZSSConfig, *, teacher: Any = None, **overrides: Any) -> Any:
    """Build the CLIP-ZSS training wrapper.

    Args:
        name_or_cfg: Preset name or a config.
        teacher: Optional prebuilt :class:`clipzss.teacher.CLIPTeacher`.
        **overrides: Config overrides (see :func:`get_preset_config`).

    Returns:
        A :class:`clipzss.model.CLIPZSS`.
    """
    from .model import CLIPZSS

    if isinstance(name_or_cfg, CLIPZSSConfig):
        cfg = replace(name_or_cfg, **overrides) if overrides else name_or_cfg
    else:
        cfg = get_preset_config(name_or_cfg, **overrides)
    model = CLIPZSS(cfg, teacher=teacher)
    # Recorded so that a segmenter exported from this model names its preset in the Hub layout (ovcore.hub).
    model.preset = name_or_cfg if isinstance(name_or_cfg, str) else None
    return model


def create_segmenter(
    checkpoint: str | os.PathLike | dict[str, Any], *, map_location: str | torch.device = "cpu"
) -> Any:
    """Load the inference model (student + text embeddings, no CLIP image tower).

    Args:
        checkpoint: ``CLIPZSS.export_inference_state_dict()`` payload or a file holding it, or weights in the Hub
            layout (``ovcore.hub``): ``"hf-hub:org/repo[@revision]"`` or a folder written by
            ``ZeroShotSegmenter.save_pretrained``.
        map_location: Device.

    Returns:
        A :class:`clipzss.segmenter.ZeroShotSegmenter` in eval mode.

    Raises:
        ValueError: a foreign or damaged checkpoint (the message names it).
        RuntimeError: an ``hf-hub:`` source that is offline and not in the Hugging Face cache.
    """
    from ovcore.hub import is_pretrained_source

    from .segmenter import ZeroShotSegmenter

    if is_pretrained_source(checkpoint):
        return ZeroShotSegmenter.from_pretrained(checkpoint, map_location=map_location)
    return ZeroShotSegmenter.from_checkpoint(checkpoint, map_location=map_location)
