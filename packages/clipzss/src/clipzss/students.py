"""Students: any timm ``features_only`` backbone + a decode head emitting C channels at 1/4 resolution (paper Sec. 4.3).

The head's output projection replaces the classifier: its C channels live in the CLIP text space, so the text
embeddings are the classifier ("no new modules", paper §1). The four levels of strides 4, 8, 16, 32 are picked from
``feature_info`` (ResNets also expose stride 2), and NHWC outputs (Swin) are permuted to NCHW.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import timm
import torch
from torch import nn

from .config import StudentConfig
from .heads import create_head

__all__ = ["Student", "create_backbone", "student_config_for_crop"]

_STRIDES = (4, 8, 16, 32)
_LOCAL_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".npz")


def create_backbone(cfg: StudentConfig) -> nn.Module:
    """timm backbone with ``features_only=True`` (pretrained=True/False, a tag, or a local file).

    A local file is read here, without running code from it (see :func:`_read_local_weights`), and timm receives the
    state dict: timm still applies the model's own checkpoint conversion (e.g. original Swin names).

    Args:
        cfg: Student options.

    Returns:
        The timm feature model.

    Raises:
        FileNotFoundError: a local weights file that does not exist.
        ValueError: a local weights file that is damaged or holds more than tensors (the message names it).
        RuntimeError: pretrained weights that cannot be fetched (offline).
    """
    name, kwargs = cfg.backbone, dict(cfg.backbone_kwargs)
    pretrained = cfg.pretrained
    if isinstance(pretrained, str):
        if pretrained.endswith(_LOCAL_SUFFIXES):
            overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
            kwargs["pretrained_cfg_overlay"] = {**overlay, **_read_local_weights(pretrained)}
        else:
            name = f"{name.split('.')[0]}.{pretrained}"
        pretrained = True
    try:
        model = timm.create_model(name, features_only=True, pretrained=bool(pretrained), **kwargs)
    except (RuntimeError, OSError) as e:
        if pretrained:
            raise RuntimeError(
                f"could not load pretrained timm weights for {name!r} (offline?): give a local file as "
                f"StudentConfig.pretrained or pretrained=False. Cause: {e}"
            ) from e
        raise
    _drop_loaded_state_dict(model)
    return model


def _read_local_weights(path: str) -> dict[str, Any]:
    """timm ``pretrained_cfg`` entries for a local weights file, read so that timm never unpickles it.

    ``.pth`` / ``.pt`` / ``.bin`` / ``.safetensors`` are read by ``ovcore.clip.read_state_dict`` (safetensors, or
    ``ovcore.safe_load``: tensors and plain data only; ``state_dict`` / ``model`` wrappers and ``module.`` prefixes
    removed) and handed over as ``state_dict``. ``.npz`` (big_vision ViT weights) stays a ``file`` for timm, which
    reads it with ``numpy.load``, whose default refuses pickled objects.

    Args:
        path: the weights file.

    Returns:
        ``{"state_dict": ...}`` or ``{"file": path}``.
    """
    if path.endswith(".npz"):
        return {"file": path}
    from ovcore.clip import read_state_dict

    return {"state_dict": read_state_dict(path)}


def _drop_loaded_state_dict(model: nn.Module) -> None:
    """timm keeps the overlay in ``pretrained_cfg``; the loaded copy is not needed and would double the memory."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict):
            cfg.pop("state_dict", None)


def student_config_for_crop(cfg: StudentConfig, crop_size: int) -> StudentConfig:
    """Fixed-size backbones (Swin's ``img_size``) are built at the training crop, so one preset serves any crop."""
    if "img_size" not in cfg.backbone_kwargs:
        return cfg
    return replace(cfg, backbone_kwargs={**cfg.backbone_kwargs, "img_size": crop_size})


class Student(nn.Module):
    """Backbone + head; ``forward(images) -> (B, C, H/4, W/4)``.

    Args:
        cfg: Student options.
        out_channels: C, the text-embedding dimension of the teacher.
    """

    def __init__(self, cfg: StudentConfig, out_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg)
        info = self.backbone.feature_info
        reductions = list(info.reduction())
        try:
            self.level_ids = [reductions.index(s) for s in _STRIDES]
        except ValueError as e:
            raise ValueError(f"backbone {cfg.backbone!r} lacks levels of strides {_STRIDES}: {reductions}") from e
        channels = [info.channels()[i] for i in self.level_ids]
        fmt = getattr(self.backbone, "output_fmt", "NCHW")
        self.channels_last_output = str(getattr(fmt, "value", fmt)) == "NHWC"
        self.head = create_head(
            cfg.head, channels, out_channels, channels=cfg.head_channels, dropout=cfg.head_dropout, norm=cfg.norm
        )
        self.out_channels = out_channels
        pcfg: dict[str, Any] = dict(getattr(self.backbone, "pretrained_cfg", None) or {})
        self.mean = tuple(pcfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(pcfg.get("std", (0.229, 0.224, 0.225)))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The four NCHW levels (strides 4, 8, 16, 32) of normalised images."""
        feats = self.backbone(images)
        feats = [feats[i] for i in self.level_ids]
        if self.channels_last_output:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Dense features R.

        Args:
            images: (B, 3, H, W) normalised with ``self.mean`` / ``self.std``.

        Returns:
            (B, C, H/4, W/4).
        """
        return self.head(self.features(images))
