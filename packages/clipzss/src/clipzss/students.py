"""Students: any timm ``features_only`` backbone + a decode head emitting C channels at 1/4 resolution (spec §6).

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


def create_backbone(cfg: StudentConfig) -> nn.Module:
    """timm backbone with ``features_only=True`` (pretrained=True/False, a tag, or a local file).

    Args:
        cfg: Student options.

    Returns:
        The timm feature model.
    """
    name, kwargs = cfg.backbone, dict(cfg.backbone_kwargs)
    pretrained = cfg.pretrained
    if isinstance(pretrained, str):
        if pretrained.endswith((".pth", ".pt", ".bin", ".safetensors", ".npz")):
            kwargs["pretrained_cfg_overlay"] = dict(file=pretrained)
        else:
            name = f"{name.split('.')[0]}.{pretrained}"
        pretrained = True
    try:
        return timm.create_model(name, features_only=True, pretrained=bool(pretrained), **kwargs)
    except (RuntimeError, OSError) as e:
        if pretrained:
            raise RuntimeError(
                f"could not load pretrained timm weights for {name!r} (offline?): give a local file as "
                f"StudentConfig.pretrained or pretrained=False. Cause: {e}"
            ) from e
        raise


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
