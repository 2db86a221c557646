"""Building blocks of the SED gradual fusion decoder (spec §4.2), with the official module names.

The sub-module and parameter names (`cnext.dwconv`, `attention.attention.q`, `attention.MLP.0`,
`conv.double_conv.0`, ...) follow the released code so that the official checkpoint loads by a prefix swap
(see `sed.convert`). The forward passes of these blocks are written for speed and are used by
`sed.decoder.Aggregator`; the per-block math is the official one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ovkernels import depthwise_conv2d, linear_attention

__all__ = [
    "ChannelsLastLayerNorm",
    "ConvNextBlock",
    "LinearAttentionLayer",
    "ClassTransformerLayer",
    "DoubleConv",
    "Up",
]


class ChannelsLastLayerNorm(nn.Module):
    """LayerNorm over the last axis, as the ConvNeXt-V1 custom `LayerNorm` of the official decoder.

    It is deliberately a plain `nn.Module` (not an `nn.LayerNorm` subclass): the official optimiser gives
    weight decay to its parameters because detectron2 only exempts torch norm classes (spec §8).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)


class ConvNextBlock(nn.Module):
    """Spatial-level fusion: ConvNeXt-V1 block with a large depthwise kernel and layer scale 1.0."""

    def __init__(self, dim: int, kernel_size: int = 9, layer_scale_init: float = 1.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = ChannelsLastLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, h, w), preferably channels_last (the permute below is then free)."""
        y = depthwise_conv2d(x, self.dwconv.weight, self.dwconv.bias)
        y = y.permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        # addcmul keeps one pass over memory for "x + gamma * y".
        return torch.addcmul(x, y.permute(0, 3, 1, 2), self.gamma.view(1, -1, 1, 1))


class LinearAttentionLayer(nn.Module):
    """Multi-head linear attention over the class axis (q/k/v projections, no output projection)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, L, C) sequences of length L (classes) -> (N, L, C)."""
        n, length, c = z.shape
        # One fused projection instead of three reads of z.
        w = torch.cat([self.q.weight, self.k.weight, self.v.weight])
        b = torch.cat([self.q.bias, self.k.bias, self.v.bias])
        qkv = F.linear(z, w, b).view(n, length, 3, self.num_heads, c // self.num_heads)
        out = linear_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], eps=1e-6)
        return out.reshape(n, length, c)


class ClassTransformerLayer(nn.Module):
    """Class-level fusion: pre-norm linear-attention transformer layer over the classes of each pixel."""

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.attention = LinearAttentionLayer(dim, num_heads)
        self.MLP = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Linear(4 * dim, dim))  # noqa: N815 (official name)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward_tokens(self, t: torch.Tensor) -> torch.Tensor:
        """t: (N, L, C) -> t + Attn(LN1 t), then + MLP(LN2 .) (the pooled-token transformer of the official)."""
        t = t + self.attention(self.norm1(t))
        return t + self.MLP(self.norm2(t))


class DoubleConv(nn.Module):
    """(Conv3x3 no bias -> GroupNorm(C/16) -> ReLU) x 2; input channels = [up, skip guidance, cost guidance]."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        groups = max(1, out_channels // 16)
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """One decoder layer: FAM (`cnext` + class `attention`) then SFM (`up` + skip/cost concat + `conv`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        guidance_channels: int,
        kernel_size: int = 9,
        num_heads: int = 4,
        layer_scale_init: float = 1.0,
    ) -> None:
        super().__init__()
        if guidance_channels >= in_channels:
            raise ValueError(f"guidance channels {guidance_channels} must be < layer input channels {in_channels}")
        self.in_channels = in_channels
        self.guidance_channels = guidance_channels
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels + guidance_channels, out_channels)
        self.cnext = ConvNextBlock(in_channels, kernel_size, layer_scale_init)
        self.attention = ClassTransformerLayer(in_channels, num_heads)
