"""Building blocks of the SED gradual fusion decoder (SED paper, Sec. 3.2 and Fig. 3), each with its own maths.

Every block has a `forward` (autograd; the paper's and the released code's maths written out) and, next to it, the
fast variant that the decoder's inference path runs (`infer*` / `*_` methods: no autograd, in-place activations,
channels_last tensors, chunks of rows or pixels scheduled by a `sed._parallel.ChunkRunner`). Both compute the same
function; tests/sed/test_sed_blocks.py checks each of them against the official code's block.

Sub-layers have descriptive names (`conv.conv1`, `attention.fc1`, ...). The released code's names of the two
`nn.Sequential` blocks (`conv.double_conv.0`, `attention.MLP.0`, ...) are mapped in one place,
`OFFICIAL_SUBLAYER_NAMES` / `rename_official_key`: `Up` applies it to every state dict loaded into it and
`sed.convert` to official checkpoints, so official and older checkpoints load unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ovkernels import depthwise_conv2d, linear_attention
from sed._parallel import ChunkRunner

__all__ = [
    "OFFICIAL_SUBLAYER_NAMES",
    "ChannelsLastLayerNorm",
    "ConvNextBlock",
    "correlate_one_channel",
    "head_logits",
    "LinearAttentionLayer",
    "ClassTransformerLayer",
    "DoubleConv",
    "FusedSFM",
    "Up",
    "fold_up_into_conv",
    "rename_official_key",
]

_CL = torch.channels_last

OFFICIAL_SUBLAYER_NAMES = {
    "conv.double_conv.0.": "conv.conv1.",
    "conv.double_conv.1.": "conv.norm1.",
    "conv.double_conv.3.": "conv.conv2.",
    "conv.double_conv.4.": "conv.norm2.",
    "attention.MLP.0.": "attention.fc1.",
    "attention.MLP.2.": "attention.fc2.",
}
"""An `Up` layer's sub-layer names in the released code (and in older checkpoints of this package) -> ours."""

_OFFICIAL_NAME = re.compile(r"(^|\.)(" + "|".join(re.escape(k) for k in OFFICIAL_SUBLAYER_NAMES) + ")")


def rename_official_key(key: str) -> str:
    """A state-dict key with the released code's sub-layer names -> this package's; other keys are returned as is.

    Example: ``decoder.decoder1.conv.double_conv.0.weight`` -> ``decoder.decoder1.conv.conv1.weight``.
    """
    return _OFFICIAL_NAME.sub(lambda m: m.group(1) + OFFICIAL_SUBLAYER_NAMES[m.group(2)], key, count=1)


def _rename_official_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load-state-dict pre-hook of `Up`: rename the official sub-layer keys below `prefix` in place."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        new = prefix + rename_official_key(key[len(prefix) :])
        if new != key:
            state_dict[new] = state_dict.pop(key)


def fold_up_into_conv(
    up_weight: torch.Tensor, up_bias: torch.Tensor, conv_weight: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse ``conv3x3(pad 1, no bias) o convT(k2, s2)`` into one ``convT(k4, s2, pad 1)`` plus a bias map.

    With y = convT_k2s2(x) + b and z = conv3x3(y), output row m takes y rows m-1..m+1, i.e. input rows i with
    2i + a = m + d (a in {0,1}, d in {-1,0,1}): a 4-tap transposed conv with kernel U[r] = sum_{a-d=r} W_up[a] W[d].
    The bias b is constant over the upsampled map but the 3x3 conv zero-pads it, hence a per-position map.

    Args:
        up_weight: (C_in, C_mid, 2, 2) ConvTranspose2d weight.
        up_bias: (C_mid,) its bias.
        conv_weight: (C_out, C_mid, 3, 3) the part of DoubleConv's first conv that reads the upsampled channels.
        size: (H, W) of the upsampled map.

    Returns:
        (U (C_in, C_out, 4, 4), bias_map (1, C_out, H, W)).
    """
    c_in, c_mid = up_weight.shape[:2]
    c_out = conv_weight.shape[0]
    fused = up_weight.new_zeros(c_in, c_out, 4, 4)
    for a in range(2):
        for b in range(2):
            for d in range(3):
                for e in range(3):
                    # conv tap d reads y[m + d - 1]; r = a - (d - 1) in -1..2 -> kernel index r + 1.
                    fused[:, :, a - d + 2, b - e + 2] += up_weight[:, :, a, b] @ conv_weight[:, :, d, e].T
    ones = up_bias.view(1, c_mid, 1, 1).expand(1, c_mid, *size)
    bias_map = F.conv2d(ones, conv_weight, padding=1)
    return fused, bias_map


def correlate_one_channel(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    """``F.conv2d(x, weight, padding=padding)[:, 0]`` for a one-output-channel kernel, as a GEMM and shifted adds.

    oneDNN runs convolutions with one output channel (the decoder's heads, CER's fused 9x9 scorer) far below the
    CPU's GEMM speed. Here the channels are contracted first for every tap at once (one GEMM: taps x C against
    C x pixels), then each tap's plane is added at its offset; zero padding is the clipping of those offsets.
    2-5x faster on CPU at the decoder's shapes; equal up to float rounding.

    Args:
        x: (n, C, H, W), preferably channels_last (the GEMM then reads it in place).
        weight: (1, C, kh, kw).
        padding: (ph, pw) zero padding.

    Returns:
        (n, H + 2 ph - kh + 1, W + 2 pw - kw + 1).
    """
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    ph, pw = padding
    ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
    taps = torch.matmul(weight[0].permute(1, 2, 0).reshape(kh * kw, c), x.permute(0, 2, 3, 1).reshape(-1, c).T)
    taps = taps.view(kh, kw, n, h, w)
    out = x.new_zeros(n, ho, wo)
    for a in range(kh):
        y0, y1 = max(0, ph - a), min(ho, h + ph - a)
        for b in range(kw):
            x0, x1 = max(0, pw - b), min(wo, w + pw - b)
            if y0 < y1 and x0 < x1:
                out[:, y0:y1, x0:x1] += taps[a, b, :, y0 + a - ph : y1 + a - ph, x0 + b - pw : x1 + b - pw]
    return out


def head_logits(head: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A decoder head (3x3 conv, one output channel, padding 1) on x (n, C, h, w) -> logits (n, h, w)."""
    return correlate_one_channel(x, head.weight, head.padding).add_(head.bias[0])


class ChannelsLastLayerNorm(nn.Module):
    """LayerNorm over the last axis, as the ConvNeXt-V1 custom `LayerNorm` of the official decoder.

    It is deliberately a plain `nn.Module` (not an `nn.LayerNorm` subclass): the official optimiser gives weight
    decay to its parameters because detectron2 only exempts torch norm classes (package README, "Training").
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
    """Spatial-level fusion of the FAM (SED paper, Sec. 3.2): ConvNeXt-V1 block, 9x9 depthwise conv, layer scale."""

    def __init__(self, dim: int, kernel_size: int = 9, layer_scale_init: float = 1.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = ChannelsLastLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, h, w), preferably channels_last (the permutes are then free) -> x + gamma * MLP(LN(DWConv x))."""
        y = depthwise_conv2d(x, self.dwconv.weight, self.dwconv.bias).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        # addcmul keeps one pass over memory for "x + gamma * y".
        return torch.addcmul(x, y.permute(0, 3, 1, 2), self.gamma.view(1, -1, 1, 1))

    def infer_chunk(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """`forward(x)` written into `out` without autograd (GELU in place)."""
        y = depthwise_conv2d(x, self.dwconv.weight, self.dwconv.bias).permute(0, 2, 3, 1)
        y = self.pwconv2(torch.ops.aten.gelu_(self.pwconv1(self.norm(y))))
        torch.addcmul(x, y.permute(0, 3, 1, 2), self.gamma.view(1, -1, 1, 1), out=out)

    def infer(self, x: torch.Tensor, run: ChunkRunner) -> torch.Tensor:
        """`forward` over row chunks of channels_last x (n, C, h, w) on the runner's workers (no autograd)."""
        n, c, h, w = x.shape
        out = torch.empty_like(x, memory_format=_CL)
        run.map(lambda i, j: self.infer_chunk(x[i:j], out[i:j]), run.split(n, 4 * c * h * w))
        return out


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

    def infer(self, z: torch.Tensor) -> torch.Tensor:
        """`forward(z)` without autograd; on CPU in fewer passes over memory than the reference maths.

        The feature maps phi = elu + 1 are applied in place on the q / k views of the fused projection, and the
        official ``v / L ... * L`` (a guard of fp16's range that cancels exactly) is left out. Accelerators use the
        `ovkernels` kernel through `forward`.
        """
        if z.device.type != "cpu":
            return self(z)
        n, length, c = z.shape
        w = torch.cat([self.q.weight, self.k.weight, self.v.weight])
        b = torch.cat([self.q.bias, self.k.bias, self.v.bias])
        qkv = F.linear(z, w, b).view(n, length, 3, self.num_heads, c // self.num_heads)
        q, k, v = (F.elu_(part).add_(1) if i < 2 else part for i, part in enumerate(qkv.unbind(2)))
        kv = torch.einsum("nshd,nshv->nhdv", k, v)
        den = torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)).add_(1e-6)
        out = torch.einsum("nlhd,nhdv->nlhv", q, kv).div_(den.unsqueeze(-1))
        return out.reshape(n, length, c)


class ClassTransformerLayer(nn.Module):
    """Class-level fusion of the FAM (SED paper, Sec. 3.2): linear attention over the classes of each pixel.

    The pixels are average-pooled by `pool` first and the result is upsampled back (bilinear, align_corners=True)
    and added to the input, as in the released code (pool 2 in training, 1 at test time).
    """

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        super().__init__()
        self.attention = LinearAttentionLayer(dim, num_heads)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def transform(self, t: torch.Tensor) -> torch.Tensor:
        """Pre-norm transformer on class sequences t (N, T, C): t + Attn(LN1 t), then + MLP(LN2 t) (ReLU MLP)."""
        t = t + self.attention(self.norm1(t))
        return t + self.fc2(F.relu(self.fc1(self.norm2(t))))

    def transform_(self, t: torch.Tensor) -> torch.Tensor:
        """`transform` in place on a contiguous chunk of sequences (no autograd)."""
        t += self.attention.infer(self.norm1(t))
        t += self.fc2(self.fc1(self.norm2(t)).relu_())
        return t

    def forward(self, x: torch.Tensor, pool: int = 1) -> torch.Tensor:
        """x (B, T, C, h, w) -> x + Upsample(transform(AvgPool(x) read as one class sequence per pixel))."""
        b, t, c, h, w = x.shape
        xp = x.reshape(b * t, c, h, w)
        if pool > 1:
            xp = F.avg_pool2d(xp, pool)
        hp, wp = xp.shape[-2:]
        tokens = xp.reshape(b, t, c, hp * wp).permute(0, 3, 1, 2).reshape(b * hp * wp, t, c)
        out = self.transform(tokens).reshape(b, hp * wp, t, c).permute(0, 2, 3, 1).reshape(b * t, c, hp, wp)
        if (hp, wp) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
        return x + out.reshape(b, t, c, h, w)

    def infer_(self, x: torch.Tensor, pool: int, run: ChunkRunner) -> torch.Tensor:
        """`forward(x[None], pool)[0]` in place on one image's channels_last x (T, C, h, w) (no autograd).

        Pixels are independent sequences over the classes, so the work is split into chunks of pixels.
        """
        n, c, h, w = x.shape
        if n == 0:
            return x
        src = F.avg_pool2d(x, pool) if pool > 1 else x
        hp, wp = src.shape[-2:]
        seq = src.permute(0, 2, 3, 1).reshape(n, hp * wp, c)  # a view of x when channels_last and pool == 1
        ranges = run.split(hp * wp, 4 * c * n)
        if pool == 1:

            def chunk(i: int, j: int) -> None:
                view = seq[:, i:j]
                view += self.transform_(view.transpose(0, 1).contiguous()).transpose(0, 1)

            run.map(chunk, ranges)
            return x
        pooled = torch.empty((hp * wp, n, c), dtype=x.dtype, device=x.device)

        def chunk_pooled(i: int, j: int) -> None:
            pooled[i:j] = self.transform_(seq[:, i:j].transpose(0, 1).contiguous())

        run.map(chunk_pooled, ranges)
        up = pooled.permute(1, 2, 0).reshape(n, c, hp, wp)
        x += F.interpolate(up, size=(h, w), mode="bilinear", align_corners=True)
        return x


class DoubleConv(nn.Module):
    """The SFM's two convolutions (SED paper, Sec. 3.2): (conv3x3 no bias -> GroupNorm(C/16) -> ReLU) x 2.

    Its input is the concatenation ``[upsampled features, repeated skip guidance, cost guidance]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        groups = max(1, out_channels // 16)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(groups, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C_in, H, W), the concatenated input -> (N, C_out, H, W)."""
        return self.after_conv1(self.conv1(x))

    def after_conv1(self, z: torch.Tensor) -> torch.Tensor:
        """Everything after the first conv: GroupNorm -> ReLU -> conv3x3 -> GroupNorm -> ReLU.

        The ReLUs run in place: GroupNorm's backward needs its input, not its output, so autograd allows it.
        """
        z = F.relu(self.norm1(z), inplace=True)
        return F.relu(self.norm2(self.conv2(z)), inplace=True)

    def split_conv1(self, sizes: Sequence[int]) -> tuple[torch.Tensor, ...]:
        """conv1's weight split by input-channel group (e.g. [up, skip, cost]).

        conv1 is linear without bias, so conv1(cat(parts)) equals the sum of each part's conv with its slice.
        """
        if sum(sizes) != self.conv1.in_channels:
            raise ValueError(f"input groups {list(sizes)} do not add up to conv1's {self.conv1.in_channels} channels")
        return torch.split(self.conv1.weight, list(sizes), dim=1)

    def forward_guided(self, up: torch.Tensor, skip: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        """`forward(cat([up, skip repeated over T, corr]))` without repeating the skip guidance.

        Args:
            up: (B, T, C_up, H, W) upsampled features of each class.
            skip: (B, G, H, W) projected skip guidance, the same for every class of an image.
            corr: (B, T, G_c, H, W) cost guidance of each class.

        Returns:
            (B, T, C_out, H, W).
        """
        b, t = up.shape[:2]
        w_up, w_skip, w_corr = self.split_conv1((up.shape[2], skip.shape[1], corr.shape[2]))
        z = F.conv2d(torch.cat([up, corr], dim=2).flatten(0, 1), torch.cat([w_up, w_corr], dim=1), padding=1)
        # Linearity: the conv of the repeated skip guidance is one map per image, broadcast over the classes.
        z = z.unflatten(0, (b, t)) + F.conv2d(skip, w_skip, padding=1).unsqueeze(1)
        return self.after_conv1(z.flatten(0, 1)).unflatten(0, (b, t))


class FusedSFM(NamedTuple):
    """The SFM of one image with `up` folded into conv1 (see `Up.fuse_sfm`)."""

    kernel: torch.Tensor
    """(C_in, C_out, 4, 4) transposed-conv kernel of ``conv1_up o up``."""
    corr_weight: torch.Tensor
    """(C_out, G_c, 3, 3) conv1's slice that reads the cost guidance."""
    bias_map: torch.Tensor
    """(1, C_out, 2h, 2w) ``up``'s bias through conv1 plus the conv of the image's skip guidance."""


class Up(nn.Module):
    """One gradual fusion decoder layer (SED paper, Sec. 3.2, Fig. 3): FAM then SFM.

    FAM: `cnext` (spatial level) and `attention` (class level). SFM: `up` (2x transposed conv), concatenation with
    the skip guidance (repeated over the classes) and the cost guidance, `conv` (DoubleConv). The sub-module names
    are the released code's; state dicts with its `double_conv` / `MLP` names load through `rename_official_key`.
    """

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
        self.register_load_state_dict_pre_hook(_rename_official_keys)

    def forward(
        self, x: torch.Tensor, guidance: torch.Tensor, corr_guidance: torch.Tensor, pool: int = 1
    ) -> torch.Tensor:
        """One layer on every class.

        Args:
            x: (B, T, C_in, h, w) the previous layer's output.
            guidance: (B, G, 2h, 2w) projected skip guidance (one per image).
            corr_guidance: (B, T, G_c, 2h, 2w) cost guidance of each class.
            pool: average pooling of the class attention.

        Returns:
            (B, T, C_out, 2h, 2w).
        """
        b, t = x.shape[:2]
        x = self.cnext(x.flatten(0, 1)).unflatten(0, (b, t))
        x = self.attention(x, pool)
        up = self.up(x.flatten(0, 1)).unflatten(0, (b, t))
        return self.conv.forward_guided(up, guidance, corr_guidance)

    # ------------------------------------------------------------------- inference (no autograd, one image)
    def fam_(self, x: torch.Tensor, pool: int, run: ChunkRunner) -> torch.Tensor:
        """The FAM of one image's classes, channels_last x (n, C_in, h, w); the class attention works in place."""
        return self.attention.infer_(self.cnext.infer(x, run), pool, run)

    def fuse_sfm(self, skip: torch.Tensor, size: tuple[int, int]) -> FusedSFM:
        """Per-image constants of the SFM: `up` folded into conv1 (`fold_up_into_conv`) and the skip term.

        Args:
            skip: (1, G, H, W) this image's projected skip guidance.
            size: (H, W) = twice the layer's input size.
        """
        c_up, g = self.up.out_channels, self.guidance_channels
        w_up, w_skip, w_corr = self.conv.split_conv1((c_up, g, self.conv.conv1.in_channels - c_up - g))
        kernel, bias_map = fold_up_into_conv(self.up.weight, self.up.bias, w_up, size)
        # Linearity: the skip guidance is the same for every class, so its conv is computed once per image.
        return FusedSFM(kernel, w_corr, bias_map + F.conv2d(skip, w_skip, padding=1))

    def sfm_chunk(self, x: torch.Tensor, corr: torch.Tensor, fused: FusedSFM) -> torch.Tensor:
        """The SFM on a chunk of classes: x (n, C_in, h, w) FAM output, corr (n, G_c, 2h, 2w) -> (n, C_out, 2h, 2w).

        Equals ``conv(cat([up(x), skip repeated n times, corr]))`` with the per-image terms taken from `fused`.
        """
        z = F.conv_transpose2d(x, fused.kernel, None, stride=2, padding=1)
        z += F.conv2d(corr, fused.corr_weight, padding=1)
        z += fused.bias_map
        return self.conv.after_conv1(z)
