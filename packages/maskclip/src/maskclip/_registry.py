"""Preset registry: a preset name maps to its config (data); ``create_maskclip(name, ...)`` builds the model.

The shape shared by every method package (root README, "Adding a method"): one entry per ``model_configs/*.json``
file, plus ``@register_maskclip`` for presets written in Python, whose function returns a ``MaskCLIPConfig``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovcore.registry import PresetRegistry

if TYPE_CHECKING:
    from maskclip.config import MaskCLIPConfig
    from maskclip.model import MaskCLIP

__all__ = [
    "register_maskclip",
    "register_maskclip_preset",
    "list_presets",
    "get_preset_config",
    "create_maskclip",
    "is_preset",
]


def _import_presets() -> None:
    # The preset module registers on import; importing it here keeps `maskclip._registry` importable on its own.
    import maskclip.presets  # noqa: F401


_PRESETS: PresetRegistry[Callable[[], MaskCLIPConfig]] = PresetRegistry("MaskCLIP preset", populate=_import_presets)
register_maskclip = _PRESETS.register
"""Decorator: register a preset written in Python, a function taking no arguments and returning a ``MaskCLIPConfig``,
under its function name (a duplicate name raises ``ValueError``); ``create_maskclip(name)`` then builds it::

    @maskclip.register_maskclip
    def maskclip_vit_b16_whole() -> maskclip.MaskCLIPConfig:
        '''MaskCLIP ViT-B/16 on the whole image (the first docstring line is the preset's description).'''
        return maskclip.load_config("maskclip_vit_b16", window_size=None)
"""
register_maskclip_preset = _PRESETS.add
"""Register a config function under a given name (each JSON config in ``model_configs/`` is registered so)."""


def list_presets(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching an fnmatch ``pattern`` (e.g. ``"maskclip_vit_*"``)."""
    return _PRESETS.names(pattern)


def is_preset(name: str) -> bool:
    """Whether ``name`` is a registered preset."""
    return name in _PRESETS


def get_preset_config(name: str, **overrides: Any) -> MaskCLIPConfig:
    """The config of a registered preset, with ``overrides`` applied.

    Its ``name`` is the registered name and its ``description`` the first line of the preset function's docstring
    (the config's own when the function has none), so a preset made from another keeps its own identity.

    Raises:
        ValueError: unknown preset (the message lists them) or unknown field.
    """
    from maskclip.config import MaskCLIPConfig

    cfg = _PRESETS.config(name, MaskCLIPConfig, builder="create_maskclip")
    return cfg.named(name, _PRESETS.description(name)).replace(**overrides)


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
        name: A registered preset (see :func:`list_presets`), or pretrained weights in the Hub layout
            (``ovcore.hub``): ``"hf-hub:org/repo[@revision]"`` or a folder written by ``MaskCLIP.save_pretrained``.
        pretrained: True for the preset's open_clip tag (random weights when it has none), None / False for random
            CLIP weights, an explicit open_clip tag or local CLIP checkpoint file, or an ``hf-hub:`` source /
            pretrained folder.
        device: Where to build.
        class_names: Optional vocabulary to encode right away (otherwise the preset's, lazily).
        cache_dir: Text-embedding cache folder (default ``ovcore.text.default_cache_dir()``).
        **overrides: ``MaskCLIPConfig`` fields to change (e.g. ``window_size=None``, ``test_short_side=448``).

    Raises:
        ValueError: unknown preset (the message lists them), unknown override or unknown tag; a bad pretrained
            source.
        RuntimeError: the tag's weights are not in the local cache and the hub is offline (the message names the
            model, the tag and the expected paths); the same for an ``hf-hub:`` source.
    """
    from ovcore.hub import is_pretrained_source

    build = dict(device=device, class_names=class_names, cache_dir=cache_dir)
    if not is_preset(name) and is_pretrained_source(name):
        if pretrained not in (True, None, False):
            raise ValueError(f"{name!r} already holds the weights; do not pass pretrained= as well")
        return _create_pretrained(None, name, build, overrides)
    if is_pretrained_source(pretrained):
        return _create_pretrained(name, pretrained, build, overrides)
    from maskclip.presets import build_maskclip

    return build_maskclip(get_preset_config(name, **overrides), pretrained=pretrained, **build)


def _create_pretrained(
    preset: str | None, source: str | os.PathLike, build: dict[str, Any], overrides: dict[str, Any]
) -> MaskCLIP:
    """``create_maskclip`` from the Hub layout: the saved config (or the named preset's), then the saved weights."""
    from maskclip.config import MaskCLIPConfig
    from maskclip.presets import build_maskclip
    from ovcore.clip import load_clip_weights
    from ovcore.hub import load_pretrained_file
    from ovcore.text import weights_id_of

    weights, path = load_pretrained_file(source, method="maskclip")
    cfg = MaskCLIPConfig.for_weights(weights, preset, get_preset_config, **overrides)
    model = build_maskclip(cfg, pretrained=None, cache_dir=build["cache_dir"])
    # MaskCLIP's only weights are its CLIP's (state-dict prefix "clip.").
    foreign = [k for k in weights.state_dict if not k.startswith("clip.")]
    if foreign:
        raise ValueError(f"{source}: MaskCLIP weights are CLIP weights (keys clip.*); found {foreign[:5]}")
    clip_state = {k[len("clip.") :]: v for k, v in weights.state_dict.items()}
    try:
        load_clip_weights(model.clip, clip_state)
    except ValueError as err:  # the weights do not fit the preset: say which source
        raise ValueError(f"{source}: {err}") from err
    # The file's identity keys the on-disk text-embedding cache.
    model.weights_id = weights_id_of(path)
    model.to(build["device"])
    if build["class_names"] is not None:
        model.set_vocabulary(build["class_names"])
    return model
