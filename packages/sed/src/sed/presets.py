"""Registered SED presets: one entry per `model_configs/<name>.json`, registered when this module is imported.

Each entry returns the file's `SEDConfig`; `build_sed` turns a config into a model (`sed.create_sed` does both).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sed._registry import _PRESETS
from sed.config import SEDConfig, list_config_names, load_config

if TYPE_CHECKING:
    import torch

    from sed.model import SED

__all__ = ["build_sed"]


def build_sed(
    cfg: SEDConfig,
    pretrained_clip: bool | str | os.PathLike | None = True,
    checkpoint: str | os.PathLike | dict | None = None,
    *,
    device: str | torch.device = "cpu",
    class_names: list[str] | None = None,
) -> SED:
    """Build a SED model from a config (see `sed.create_sed` for the arguments)."""
    # Deferred: listing presets (e.g. for a command's --help) must not import torch and open_clip.
    import torch

    from ovcore.clip import create_clip
    from ovcore.text import weights_id_of
    from sed.model import SED

    if pretrained_clip is True:
        # A full checkpoint carries the CLIP weights too, so the open_clip weights are not needed then.
        pretrained_clip = None if checkpoint is not None else cfg.clip_pretrained
    elif pretrained_clip is False:
        pretrained_clip = None
    meta = str(device) == "meta"
    if meta and (pretrained_clip is not None or checkpoint is not None):
        raise ValueError("device='meta' builds shapes only: use pretrained_clip=None and no checkpoint")
    clip = create_clip(
        cfg.clip_model,
        pretrained_clip,
        device="meta" if meta else "cpu",
        drop_path=cfg.clip_drop_path,
        head_drop=cfg.clip_head_drop,
    )
    if meta:
        with torch.device("meta"):
            model = SED(cfg, clip)
        return model
    model = SED(cfg, clip)
    if pretrained_clip is not None:
        model.weights_id = weights_id_of(pretrained_clip)
    if checkpoint is not None:
        from sed.convert import load_sed_checkpoint  # deferred: avoids an import cycle convert -> presets

        load_sed_checkpoint(model, checkpoint)
        # The checkpoint replaces the text tower too, so the CLIP tag no longer names these weights; an in-memory
        # state dict has no stable identity at all (embeddings are then re-encoded instead of read from disk).
        model.weights_id = weights_id_of(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    model.to(device)
    if class_names is not None:
        model.set_vocabulary(class_names)
    return model


# One preset per JSON file in model_configs/ (open_clip's rescan of its config folder): adding a preset is adding a
# file, and a `_fast` variant is a two-line overlay of its base. The entry only reads the file: configs are data.
_PRESETS.add_configs(list_config_names(), load_config)
