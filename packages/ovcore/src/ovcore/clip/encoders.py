"""Dense image encoders over open_clip vision towers.

* :class:`ConvNeXtCLIPEncoder` (SED paper Sec. 3.1): the four stage outputs of an open_clip ConvNeXt trunk and the CLIP
  image head applied at every location of the last stage, i.e. ``Fv(p) = Proj(LN(res5(p)))``.
* :class:`ViTCLIPEncoder` (CLIP-ZSS teacher, paper Sec. 3.2): the projected CLS embedding and the projected patch tokens
  of an open_clip ViT at any input size, with the positional embedding interpolated to the patch grid; with
  ``last_attention="value"`` the last block's attention is MaskCLIP's value embedding (Zhou et al., ECCV 2022, §3.2).

Both wrap ``clip_model.visual`` (parameters are shared, not copied) and take images that are already normalised
with the CLIP mean/std, as float ``(B, 3, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.timm_model import TimmModel
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import nn

__all__ = [
    "ConvNeXtCLIPEncoder",
    "ViTCLIPEncoder",
    "FEATURE_NAMES",
    "FEATURE_STRIDES",
    "LAST_ATTENTION_MODES",
    "value_embedding_block",
]

FEATURE_NAMES = ("res2", "res3", "res4", "res5")
FEATURE_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
LAST_ATTENTION_MODES = ("standard", "value")
"""What :class:`ViTCLIPEncoder` does in the last block's attention: CLIP's own, or MaskCLIP's value embedding."""


def _visual(clip_model: nn.Module) -> nn.Module:
    return getattr(clip_model, "visual", clip_model)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be normalised float tensors, got dtype {images.dtype}")


class ConvNeXtCLIPEncoder(nn.Module):
    """Hierarchical features and the dense CLIP embedding of an open_clip ConvNeXt image tower.

    Args:
        clip_model: an open_clip CLIP whose ``visual`` is a timm ConvNeXt tower (``convnext_base_w(_320)``,
            ``convnext_large_d(_320)``, ``ovcore-convnext-tiny``...), or that tower itself.

    Attributes:
        channels: (C2, C3, C4, C5) channel counts of res2..res5.
        embed_dim: Dt, the CLIP joint embedding dimension.
        strides: (4, 8, 16, 32).
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        visual = _visual(clip_model)
        trunk = getattr(visual, "trunk", None)
        if not isinstance(visual, TimmModel) or not hasattr(trunk, "stages") or not hasattr(trunk, "stem"):
            raise ValueError(f"expected an open_clip timm ConvNeXt image tower, got {type(visual).__name__}")
        head = trunk.head
        if not isinstance(getattr(head, "fc", None), nn.Identity) or not hasattr(head, "norm"):
            raise ValueError("the trunk classifier must be reset (open_clip timm_pool='' with a linear/mlp proj)")
        self.visual = visual
        info = trunk.feature_info
        self.channels: tuple[int, int, int, int] = tuple(int(f["num_chs"]) for f in info)  # type: ignore[assignment]
        self.strides: tuple[int, int, int, int] = tuple(int(f["reduction"]) for f in info)  # type: ignore[assignment]
        if len(self.channels) != 4 or self.strides != (4, 8, 16, 32):
            raise ValueError(f"expected four stages with strides (4, 8, 16, 32), got {self.strides}")
        self.embed_dim = self._head_out_features(visual.head)

    @staticmethod
    def _head_out_features(head: nn.Module) -> int:
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("the open_clip image head has no projection (timm_proj must be 'linear' or 'mlp')")
        return linears[-1].out_features

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage outputs ``{"res2": (B, C2, H/4, W/4), ..., "res5": (B, C5, H/32, W/32)}``."""
        _check_images(images)
        trunk = self.visual.trunk
        x = trunk.stem(images)
        features = {}
        for name, stage in zip(FEATURE_NAMES, trunk.stages, strict=True):
            x = stage(x)
            features[name] = x
        return features

    def dense_embedding(self, res5: torch.Tensor) -> torch.Tensor:
        """The CLIP image head applied at every location of ``res5``: (B, C5, h, w) -> (B, Dt, h, w).

        Equal to ``encode_image`` when ``res5`` is 1x1, because global average pooling is then the identity.
        """
        if res5.ndim != 4 or res5.shape[1] != self.channels[3]:
            raise ValueError(f"res5 must be (B, {self.channels[3]}, h, w), got {tuple(res5.shape)}")
        trunk_head = self.visual.trunk.head
        x = self.visual.trunk.norm_pre(res5)  # Identity for ConvNeXt (head_norm_first=False); kept for fidelity
        x = trunk_head.norm(x)  # LayerNorm2d over channels = per-pixel LayerNorm
        x = x.permute(0, 2, 3, 1)  # channels-last so the Linear / Mlp head acts per location
        x = trunk_head.fc(trunk_head.drop(trunk_head.pre_logits(x)))
        x = self.visual.head(x)
        return x.permute(0, 3, 1, 2).contiguous()

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Return ``(features, dense)``: the res2..res5 dict and the (B, Dt, H/32, W/32) dense embedding."""
        features = self.forward_features(images)
        return features, self.dense_embedding(features["res5"])


class ViTCLIPEncoder(nn.Module):
    """Projected CLS and patch embeddings of an open_clip ViT at any input size.

    The positional embedding's patch grid is interpolated to the input's grid on the fly (no interpolation at the
    native size, so the CLS embedding then equals ``encode_image``). Patch dropout is not applied.

    Args:
        clip_model: an open_clip CLIP with a ``VisionTransformer`` tower, or the tower itself.
        input_size: nominal input size (int or (H, W)) reported as :attr:`grid_size`, e.g. 512 for the CLIP-ZSS
            teacher (a 32x32 grid); forward accepts other sizes too. Default: the model's native size.
        pos_interpolation: ``"bilinear"`` (ZegCLIP, the CLIP-ZSS teacher) or ``"bicubic"`` (antialiased, exactly
            open_clip's ``resize_pos_embed`` used for ``force_image_size``).
        last_attention: ``"standard"`` (CLIP as trained) or ``"value"``: MaskCLIP's dense features, where the last
            block's attention output of every token is ``out_proj(v_proj(ln_1(x)))``, i.e. its attention matrix is
            the identity (query and key are not used); the residual, the MLP, ``ln_post`` and ``proj`` are kept. The
            CLS output then goes through the modified block too and no longer equals ``encode_image``.

    Attributes:
        embed_dim: D, the joint embedding dimension.
        patch_size: (ph, pw).
        grid_size: patch grid at ``input_size``.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        input_size: int | tuple[int, int] | None = None,
        *,
        pos_interpolation: str = "bilinear",
        last_attention: str = "standard",
    ) -> None:
        super().__init__()
        visual = _visual(clip_model)
        if not isinstance(visual, VisionTransformer):
            raise ValueError(f"expected an open_clip VisionTransformer image tower, got {type(visual).__name__}")
        if visual.attn_pool is not None or visual.pool_type != "tok" or visual.final_ln_after_pool:
            raise ValueError("only CLS-token pooled ViTs (no attentional pool, ln_post before pooling) are supported")
        if visual.proj is None:
            raise ValueError("the ViT tower has no output projection")
        if pos_interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"pos_interpolation must be 'bilinear' or 'bicubic', got {pos_interpolation!r}")
        if last_attention not in LAST_ATTENTION_MODES:
            raise ValueError(f"last_attention must be one of {LAST_ATTENTION_MODES}, got {last_attention!r}")
        if last_attention == "value":
            _check_value_block(visual.transformer.resblocks[-1])
        self.visual = visual
        self.pos_interpolation = pos_interpolation
        self.last_attention = last_attention
        self.patch_size: tuple[int, int] = tuple(visual.patch_size)  # type: ignore[assignment]
        self.native_grid: tuple[int, int] = tuple(visual.grid_size)  # type: ignore[assignment]
        size = visual.image_size if input_size is None else input_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.grid_size = (self.input_size[0] // self.patch_size[0], self.input_size[1] // self.patch_size[1])
        self.embed_dim = int(visual.proj.shape[1])

    def positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The (1 + gh*gw, width) positional embedding for a ``grid`` of patches (class token first)."""
        pos = self.visual.positional_embedding
        if tuple(grid) == self.native_grid:
            return pos
        cls_pos, patch_pos = pos[:1], pos[1:]
        gh, gw = self.native_grid
        patch_pos = patch_pos.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        # bicubic uses open_clip's resize_pos_embed settings (antialiased kernel), bilinear ZegCLIP's plain one
        patch_pos = F.interpolate(
            patch_pos.float(),
            size=tuple(grid),
            mode=self.pos_interpolation,
            align_corners=False,
            antialias=self.pos_interpolation == "bicubic",
        ).to(pos.dtype)
        return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)], dim=0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(cls (B, D), dense (B, D, H/ph, W/pw))``, both projected into the joint space, not normalised."""
        _check_images(images)
        visual = self.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        b, _, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding((gh, gw)).to(x.dtype)
        x = visual.ln_pre(x)
        x = visual.transformer(x) if self.last_attention == "standard" else self._value_transformer(x)
        x = visual.ln_post(x) @ visual.proj
        dense = x[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)
        return x[:, 0], dense

    def _value_transformer(self, x: torch.Tensor) -> torch.Tensor:
        """The tower's transformer on (B, L, width) tokens with MaskCLIP's last block (see ``last_attention``)."""
        transformer = self.visual.transformer
        blocks = transformer.resblocks
        # open_clip's blocks take (L, B, width) when the transformer is not batch-first; the last block is token-wise
        seq_first = not getattr(transformer, "batch_first", True)
        if seq_first:
            x = x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        if seq_first:
            x = x.transpose(0, 1)
        return value_embedding_block(blocks[-1], x)


def _check_value_block(block: nn.Module) -> None:
    if not isinstance(block, ResidualAttentionBlock) or not isinstance(block.attn, nn.MultiheadAttention):
        raise ValueError(
            f"last_attention='value' needs open_clip ResidualAttentionBlocks with nn.MultiheadAttention, got "
            f"{type(block).__name__}"
        )
    if block.attn.in_proj_weight is None or block.attn.kdim != block.attn.embed_dim:
        raise ValueError("last_attention='value' needs a packed self-attention projection (in_proj_weight)")


def value_embedding_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` with its attention matrix replaced by the identity (MaskCLIP).

    Every token's attention output is ``out_proj(v_proj(ln_1(x)))``; the residual, LayerScale and MLP stay as they
    are. Token-wise, so ``x`` may be (B, L, width) or (L, B, width).
    """
    _check_value_block(block)
    attn = block.attn
    width = attn.embed_dim
    v_weight = attn.in_proj_weight[2 * width :]
    v_bias = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    v = F.linear(block.ln_1(x), v_weight, v_bias)
    x = x + block.ls_1(attn.out_proj(v))
    return x + block.ls_2(block.mlp(block.ln_2(x)))
