"""Preset registry: a preset name maps to its config (data); `create_sed(name, ...)` builds the model.

The shape shared by every method package (root README, "Adding a method"): one entry per `model_configs/*.json`
file, plus `@register_sed` for presets written in Python, whose function returns an `SEDConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovcore.registry import PresetRegistry

if TYPE_CHECKING:
    from sed.config import SEDConfig
    from sed.model import SED

__all__ = ["register_sed", "register_sed_preset", "list_presets", "get_preset_config", "create_sed", "is_preset"]


def _import_presets() -> None:
    # The preset module registers on import; importing it here keeps `sed._registry` importable on its own.
    import sed.presets  # noqa: F401


_PRESETS: PresetRegistry[Callable[[], SEDConfig]] = PresetRegistry("SED preset", populate=_import_presets)
register_sed = _PRESETS.register
"""Decorator: register a preset written in Python, a function taking no arguments and returning an `SEDConfig`, under
its function name (a duplicate name raises ``ValueError``); `create_sed(name)` then builds it::

    @sed.register_sed
    def sed_convnext_b_512() -> sed.SEDConfig:
        '''SED ConvNeXt-B at 512 input (the first docstring line is the preset's description).'''
        return sed.load_config("sed_convnext_b_768", input_size=512)
"""
register_sed_preset = _PRESETS.add
"""Register a config function under a given name (each JSON config in ``model_configs/`` is registered so)."""


def list_presets(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching an fnmatch `pattern` (e.g. ``"sed_convnext_*"``)."""
    return _PRESETS.names(pattern)


def is_preset(name: str) -> bool:
    """Whether ``name`` is a registered preset."""
    return name in _PRESETS


def get_preset_config(name: str, **overrides: Any) -> SEDConfig:
    """The config of a registered preset, with ``overrides`` applied.

    Its ``name`` is the registered name and its ``description`` the first line of the preset function's docstring
    (the config's own when the function has none), so a preset made from another keeps its own identity.

    Raises:
        ValueError: unknown preset (the message lists them) or unknown field.
    """
    from sed.config import SEDConfig

    cfg = _PRESETS.config(name, SEDConfig, builder="create_sed", article="an")
    return cfg.named(name, _PRESETS.description(name)).replace(**overrides)


def create_sed(
    name: str,
    pretrained_clip: bool | str | os.PathLike | None = True,
    checkpoint: str | os.PathLike | dict | None = None,
    *,
    device: str | Any = "cpu",
    class_names: list[str] | None = None,
    **overrides: Any,
) -> SED:
    """Build a SED preset.

    Args:
        name: a registered preset (see `list_presets`), or pretrained weights in the Hub layout (``ovcore.hub``):
            ``"hf-hub:org/repo[@revision]"`` or a folder written by ``SED.save_pretrained``.
        pretrained_clip: True for the preset's open_clip tag (random init when the preset has none), None/False for
            random CLIP weights, or an explicit tag / local CLIP checkpoint. Ignored (no CLIP download) when
            `checkpoint` provides the whole model.
        checkpoint: a full SED checkpoint: the official detectron2 ``.pth`` (converted on the fly), a file saved from
            this package (``.pth`` / ``.safetensors``), a state dict, or an ``hf-hub:`` source / pretrained folder.
        device: where to build; ``"meta"`` builds shapes only (random init, no vocabulary).
        class_names: optional vocabulary to encode right away (otherwise the preset's, lazily).
        **overrides: `SEDConfig` fields to change (e.g. ``input_size=512``, ``cer_topk=8``).

    Raises:
        ValueError: unknown preset (the message lists them) or unknown override; a bad pretrained source.
        RuntimeError: an ``hf-hub:`` source that is offline and not in the Hugging Face cache.
    """
    from ovcore.hub import is_pretrained_source

    build = dict(pretrained_clip=pretrained_clip, device=device, class_names=class_names)
    if not is_preset(name) and is_pretrained_source(name):
        if checkpoint is not None:
            raise ValueError(f"{name!r} already holds the weights; do not pass checkpoint= as well")
        return _create_pretrained(None, name, build, overrides)
    if is_pretrained_source(checkpoint):
        return _create_pretrained(name, checkpoint, build, overrides)
    from sed.presets import build_sed

    return build_sed(get_preset_config(name, **overrides), checkpoint=checkpoint, **build)


def _create_pretrained(
    preset: str | None, source: str | os.PathLike, build: dict[str, Any], overrides: dict[str, Any]
) -> SED:
    """`create_sed` from the Hub layout: the saved config (or another preset's, when one is named), saved weights."""
    from ovcore.hub import load_pretrained_file
    from ovcore.text import weights_id_of
    from sed.config import SEDConfig
    from sed.presets import build_sed

    weights, path = load_pretrained_file(source, method="sed")
    cfg = SEDConfig.for_weights(weights, preset, get_preset_config, **overrides)
    class_names = build.pop("class_names")
    try:
        model = build_sed(cfg, checkpoint=weights.state_dict, **build)
    except ValueError as err:  # the weights do not fit the preset: say which source
        raise ValueError(f"{source}: {err}") from err
    # The file's identity keys the on-disk text-embedding cache (an in-memory state dict has none).
    model.weights_id = weights_id_of(path)
    if class_names is not None:
        model.set_vocabulary(class_names)
    return model
