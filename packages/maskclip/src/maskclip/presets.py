"""Registered MaskCLIP presets: one entry per ``model_configs/<name>.json``, registered when this module is imported.

Each entry returns the file's ``MaskCLIPConfig``; ``build_maskclip`` turns a config into a model
(``maskclip.create_maskclip`` does both).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from maskclip._registry import _PRESETS
from maskclip.config import MaskCLIPConfig, list_config_names, load_config

if TYPE_CHECKING:
    import torch

    from maskclip.model import MaskCLIP

__all__ = ["build_maskclip"]


def build_maskclip(
    cfg: MaskCLIPConfig,
    pretrained: bool | str | os.PathLike | None = True,
    *,
    device: str | torch.device = "cpu",
    class_names: list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> MaskCLIP:
    """Build a MaskCLIP model from a config (see :func:`maskclip.create_maskclip` for the arguments)."""
    # Deferred: listing presets (e.g. for a command's --help) must not import torch and open_clip.
    from maskclip.model import MaskCLIP
    from ovcore.clip import create_clip
    from ovcore.text import weights_id_of

    if pretrained is True:
        pretrained = cfg.clip_pretrained
    elif pretrained is False:
        pretrained = None
    clip = create_clip(cfg.clip_model, pretrained, device="cpu")
    weights_id = weights_id_of(pretrained) if pretrained is not None else None
    model = MaskCLIP(cfg, clip, weights_id=weights_id, cache_dir=cache_dir).to(device)
    if class_names is not None:
        model.set_vocabulary(class_names)
    return model


# One preset per JSON file in model_configs/: adding a preset is adding a file. The entry only reads the file.
_PRESETS.add_configs(list_config_names(), load_config)
