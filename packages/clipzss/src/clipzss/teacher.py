"""The frozen CLIP ViT teacher (paper Sec. 3.2, 4.2): CLS embedding and projected dense tokens at the crop size.

It wraps ``ovcore.clip.create_clip`` + ``ovcore.clip.ViTCLIPEncoder``: the positional embedding is interpolated
(bilinear) to the crop's grid (512 -> 32x32 for ViT-B/16). The teacher is used only in training: the training
wrapper keeps it outside its module tree (so it is in neither ``state_dict`` nor ``parameters``) and the inference
model never builds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import TeacherConfig
from .text import class_embeddings, text_state_dict, uses_quick_gelu

__all__ = ["CLIPTeacher"]


class CLIPTeacher(nn.Module):
    """Frozen open_clip ViT.

    Args:
        cfg: Teacher options.
        input_size: Crop size the teacher runs at.
        clip_model: An already-built open_clip CLIP (tests); default builds ``cfg.model_name`` with ``cfg.pretrained``.
    """

    def __init__(self, cfg: TeacherConfig, input_size: int, clip_model: nn.Module | None = None) -> None:
        super().__init__()
        from ovcore.clip import ViTCLIPEncoder, create_clip, get_tokenizer, image_mean_std

        self.cfg = cfg
        if clip_model is None:
            clip_model = create_clip(cfg.model_name, cfg.pretrained, precision=cfg.precision, cache_dir=cfg.cache_dir)
        self.clip = clip_model
        self.encoder = ViTCLIPEncoder(clip_model, input_size)
        self.embed_dim = self.encoder.embed_dim
        self.grid_size = self.encoder.grid_size
        self.tokenizer = get_tokenizer(cfg.model_name)
        self.mean, self.std = image_mean_std(clip_model)
        self.clip.eval()
        for p in self.clip.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> CLIPTeacher:
        """The teacher always stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLS and dense tokens.

        Args:
            images: (B, 3, H, W) images normalised with ``self.mean`` / ``self.std``.

        Returns:
            ``(cls (B, D), dense (B, D, H/16, W/16))``, projected, not normalised, float32.
        """
        cls, dense = self.encoder(images)
        return cls.float(), dense.float()

    @torch.no_grad()
    def encode_classes(self, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        """(T, D) unit-norm classifier embeddings of ``class_names`` (template ensemble)."""
        device = next(self.clip.parameters()).device
        return class_embeddings(
            self.clip,
            self.tokenizer,
            class_names,
            templates,
            model_name=self.cfg.model_name,
            weights=self.cfg.pretrained,
            cache_dir=self.cfg.text_cache_dir,
            device=device,
        )

    def text_weights(self) -> dict[str, torch.Tensor]:
        """The text-tower weights (for an inference checkpoint that must encode new names without the image tower)."""
        return text_state_dict(self.clip)

    @property
    def quick_gelu(self) -> bool:
        """Whether the text tower uses QuickGELU."""
        return uses_quick_gelu(self.clip)
