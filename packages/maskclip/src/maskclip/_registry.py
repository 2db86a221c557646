"""Preset registry (timm's ``register_model`` / ``list_models`` / ``create_model`` pattern)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovcore.registry import PresetRegistry

if TYPE_CHECKING:
    from maskclip.model import MaskCLIP

__all__ = ["register_maskclip_preset", "list_presets", "create_maskclip", "is_preset"]


def _import_presets() -> None:
    # The preset module registers on import; importing it here keeps `maskclip._registry` importable on its own.
    import maskclip.presets  # noqa: F401


_PRESETS: PresetRegistry[Callable[..., MaskCLIP]] = PresetRegistry("MaskCLIP preset", populate=_import_presets)
register_maskclip_preset = _PRESETS.add
"""Register a preset entry point under a given name (the JSON configs in ``model_configs/`` are registered so)."""


def list_presets(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching an fnmatch ``pattern`` (e.g. ``"maskclip_vit_*"``)."""
    return _PRESETS.names(pattern)


def is_preset(name: str) -> bool:
    """Whether ``name`` is a registered preset."""
    return name in _PRESETS


def create_maskclip(
    name: str,
    pretrained: bool | str | os.PathLike | None = True,
    *,
    device: str | Any = "cpu",
    class_names: list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    **overrides: Any,
) -> MaskCLIP:
    """Build a MaskCLIP preset.

    Args:
        name: A registered preset (see :func:`list_presets`).
        pretrained: True for the preset's open_clip tag (random weights when it has none), None / False for random
            CLIP weights, or an explicit open_clip tag or local CLIP checkpoint file.
        device: Where to build.
        class_names: Optional vocabulary to encode right away (otherwise the preset's, lazily).
        cache_dir: Text-embedding cache folder (default ``ovcore.text.default_cache_dir()``).
        **overrides: ``MaskCLIPConfig`` fields to change (e.g. ``window_size=None``, ``test_short_side=448``).

    Raises:
        ValueError: unknown preset (the message lists them), unknown override or unknown tag.
        RuntimeError: the tag's weights are not in the local cache and the hub is offline (the message names the
            model, the tag and the expected paths).
    """
    return _PRESETS.get(name)(
        pretrained=pretrained, device=device, class_names=class_names, cache_dir=cache_dir, **overrides
    )
