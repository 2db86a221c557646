"""CLIP-ZSS presets as data: one entry per ``model_configs/<name>.json``, registered when this module is imported.

The paper-scale files share ``clipzss_swin_b_upernet.json`` (the paper's Swin-B + UPerNet recipe, Sec. 4.2-4.3) as
their ``base``; ConvNeXt is the timm stand-in for the backbones timm lacks (paper Sec. 4.3: SegFormer-B4's MiT and
SegNeXt-B's MSCAN), and the SegFormer-style all-MLP head runs on any timm backbone instead. The tiny CPU presets for
tests and demos share ``clipzss_tiny_convnext_segformer.json``. A file holds only the fields that differ from the
:class:`CLIPZSSConfig` defaults (or from its base), plus a one-line ``description``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovcore.configs import list_config_names as _config_names
from ovcore.configs import load_json_config

from ._registry import _PRESETS
from .config import CLIPZSSConfig, config_from_dict

__all__ = ["CONFIG_DIR", "DEMO_SEEN", "list_config_names", "load_config", "preset_description"]

CONFIG_DIR = Path(__file__).parent / "model_configs"
"""The folder of the preset files."""

DEMO_SEEN = [0, 1, 2, 3, 4, 5]
"""Seen ids of the demo vocabulary (ovcore.data.DEMO_CLASSES): "yellow triangle" and "striped texture" unseen."""

_DESCRIPTION = "description"


def list_config_names() -> list[str]:
    """Names of the JSON configs in ``model_configs/`` (one preset each)."""
    return _config_names(CONFIG_DIR)


def _read(name: str) -> dict[str, Any]:
    return load_json_config(CONFIG_DIR, name)


def preset_description(name: str) -> str:
    """The one-line ``description`` of config file ``name`` (empty when it has none)."""
    return str(_read(name).get(_DESCRIPTION, ""))


def load_config(name: str) -> CLIPZSSConfig:
    """Read ``model_configs/<name>.json`` (its ``base`` chain resolved) into a :class:`CLIPZSSConfig`.

    Raises:
        ValueError: no such file (the message lists them), or a field the config does not have (naming the file).
    """
    data = _read(name)
    data.pop(_DESCRIPTION, None)
    try:
        return config_from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config file {str(CONFIG_DIR / f'{name}.json')!r}: {err}") from err


# One preset per JSON file: adding a preset is adding a file, and a variant is a few-line overlay of its base.
_PRESETS.add_configs(list_config_names(), load_config, preset_description)
