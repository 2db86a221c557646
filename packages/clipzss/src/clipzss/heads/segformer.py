"""SegFormer-style all-MLP decode head (Xie et al., 2021; mmseg ``SegformerHead``).

Each level is projected to ``channels`` with a 1x1 conv-norm-act, upsampled to stride 4, concatenated, fused with a
1x1 conv-norm-act, and projected to C output channels (the classifier is replaced by the text embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ConvNormAct, register_head

__all__ = ["SegFormerHead"]


@register_head("segformer")
class SegFormerHead(nn.Module):
    """All-MLP head.

    Args:
        in_channels: Channels of the four levels (strides 4, 8, 16, 32).
        out_channels: C.
        channels: Embedding width (mmseg: 256).
        dropout: Dropout before the output projection.
        norm: "bn" or "gn".
    """

    def __init__(
        self, in_channels: list[int], out_channels: int, channels: int = 256, dropout: float = 0.1, norm: str = "bn"
    ) -> None:
        super().__init__()
        self.proj = nn.ModuleList(ConvNormAct(c, channels, 1, norm) for c in in_channels)
        self.fuse = ConvNormAct(channels * len(in_channels), channels, 1, norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """(B, Ci, Hi, Wi) per level -> (B, C, H/4, W/4)."""
        size = feats[0].shape[-2:]
        outs = [
            F.interpolate(p(f), size=size, mode="bilinear", align_corners=False) if i else p(f)
            for i, (p, f) in enumerate(zip(self.proj, feats, strict=False))
        ]
        return self.out(self.dropout(self.fuse(torch.cat(outs[::-1], 1))))
