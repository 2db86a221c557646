"""UPerNet-style decode head (Xiao et al., 2018; mmseg ``UPerHead``): PPM on the last level + FPN top-down path.

Lateral 1x1 convs, top-down addition, 3x3 FPN convs, all levels upsampled to stride 4 and concatenated, a 3x3
bottleneck, and a 1x1 projection to C output channels (the classifier replaced by the text embeddings).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import ConvNormAct, register_head

__all__ = ["UPerNetHead"]


class PPM(nn.Module):
    """Pyramid pooling module (PSPNet) over the last level."""

    def __init__(self, cin: int, channels: int, scales: tuple[int, ...], norm: str) -> None:
        super().__init__()
        self.scales = scales
        # A 1x1 pooled map has one value per channel: BatchNorm cannot train on it with one image per process, so
        # that branch is conv (with bias) + ReLU (mmseg relies on SyncBN across GPUs instead).
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, channels, 1), nn.ReLU(inplace=True))
            if scale == 1 and norm == "bn"
            else ConvNormAct(cin, channels, 1, norm)
            for scale in scales
        )
        self.bottleneck = ConvNormAct(cin + len(scales) * channels, channels, 3, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        outs = [x]
        for scale, branch in zip(self.scales, self.branches, strict=False):
            y = branch(F.adaptive_avg_pool2d(x, scale))
            outs.append(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        return self.bottleneck(torch.cat(outs, 1))


@register_head("upernet")
class UPerNetHead(nn.Module):
    """PPM + FPN head.

    Args:
        in_channels: Channels of the four levels (strides 4, 8, 16, 32).
        out_channels: C.
        channels: Width (mmseg UPerHead: 512).
        dropout: Dropout before the output projection.
        norm: "bn" or "gn".
        pool_scales: PPM scales.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        channels: int = 512,
        dropout: float = 0.1,
        norm: str = "bn",
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        self.ppm = PPM(in_channels[-1], channels, pool_scales, norm)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1, norm) for c in in_channels[:-1])
        self.fpn = nn.ModuleList(ConvNormAct(channels, channels, 3, norm) for _ in in_channels[:-1])
        self.bottleneck = ConvNormAct(channels * len(in_channels), channels, 3, norm)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """(B, Ci, Hi, Wi) per level -> (B, C, H/4, W/4)."""
        laterals = [conv(f) for conv, f in zip(self.lateral, feats[:-1], strict=False)] + [self.ppm(feats[-1])]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="bilinear", align_corners=False
            )
        outs = [conv(x) for conv, x in zip(self.fpn, laterals[:-1], strict=False)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[1:]]
        return self.out(self.dropout(self.bottleneck(torch.cat(outs, 1))))
