"""Registered SED presets: one entry point per `model_configs/<name>.json` (timm-style `@register_sed`)."""

from __future__ import annotations

import os
from typing import Any

import torch

from ovcore.clip import create_clip
from ovcore.text import weights_id_of
from sed._registry import register_sed
from sed.config import SEDConfig, load_config
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


def _create(name: str, **kwargs: Any) -> SED:
    build_keys = ("pretrained_clip", "checkpoint", "device", "class_names")
    build = {k: kwargs.pop(k) for k in build_keys if k in kwargs}
    return build_sed(load_config(name, **kwargs), **build)


@register_sed
def sed_convnext_b_768(**kwargs: Any) -> SED:
    """SED ConvNeXt-B (open_clip convnext_base_w_320 / laion_aesthetic_s13b_b82k, Dt 640), 768 input."""
    return _create("sed_convnext_b_768", **kwargs)


@register_sed
def sed_convnext_l_768(**kwargs: Any) -> SED:
    """SED ConvNeXt-L (open_clip convnext_large_d_320 / laion2b_s29b_b131k_ft_soup, Dt 768), 768 input."""
    return _create("sed_convnext_l_768", **kwargs)


@register_sed
def sed_convnext_b_768_fast(**kwargs: Any) -> SED:
    """SED-fast ConvNeXt-B: the same weights with category early rejection k=8 in predict()."""
    return _create("sed_convnext_b_768_fast", **kwargs)


@register_sed
def sed_convnext_l_768_fast(**kwargs: Any) -> SED:
    """SED-fast ConvNeXt-L: the same weights with category early rejection k=8 in predict()."""
    return _create("sed_convnext_l_768_fast", **kwargs)


@register_sed
def sed_tiny(**kwargs: Any) -> SED:
    """Test / demo size: `ovcore-convnext-tiny` CLIP (linear head), 64x64 input, 80 templates, demo classes."""
    return _create("sed_tiny", **kwargs)


@register_sed
def sed_tiny_mlp(**kwargs: Any) -> SED:
    """Like `sed_tiny` with the mlp CLIP projection head of ConvNeXt-L (`ovcore-convnext-tiny-mlp`)."""
    return _create("sed_tiny_mlp", **kwargs)
