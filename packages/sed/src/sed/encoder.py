"""SED's hierarchical encoder (SED paper, Sec. 3.1): an open_clip ConvNeXt CLIP whose image tower is fine-tuned and
whose text tower is frozen and only used to embed vocabularies (Sec. 3.1 and 4.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ovcore.clip import ConvNeXtCLIPEncoder, get_tokenizer
from ovcore.text import cached_encode_vocabulary, encode_vocabulary

__all__ = ["SEDEncoder"]


class SEDEncoder(nn.Module):
    """Stage features res2..res5 and the dense CLIP embedding Fv of a ConvNeXt CLIP, plus its text tower.

    The whole open_clip model is registered as ``clip`` (so the state dict mirrors the official
    ``clip_model.*`` keys); the `ovcore.clip.ConvNeXtCLIPEncoder` view of its image tower is kept unregistered so
    that no parameter appears twice.

    Args:
        clip_model: an open_clip CLIP with a timm ConvNeXt image tower.
        model_name: its open_clip architecture name (for the tokenizer and the embedding cache key).
    """

    def __init__(self, clip_model: nn.Module, model_name: str) -> None:
        super().__init__()
        self.clip = clip_model
        dense = ConvNeXtCLIPEncoder(clip_model)
        object.__setattr__(self, "_dense", dense)  # shares clip.visual; not a second registration
        self.model_name = model_name
        self.channels: tuple[int, int, int, int] = dense.channels
        self.embed_dim: int = dense.embed_dim
        # Official CLIP_FINETUNE="full": every parameter whose name contains "visual" trains, the rest is frozen.
        for name, param in clip_model.named_parameters():
            param.requires_grad_("visual" in name)
        self._tokenizer = None

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Normalised images (B, 3, S, S) -> ({res2..res5}, Fv (B, Dt, S/32, S/32))."""
        return self._dense(images)

    @property
    def tokenizer(self):  # noqa: ANN201 - open_clip tokenizer objects have no common base class
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(self.model_name)
        return self._tokenizer

    @torch.no_grad()
    def encode_vocabulary(
        self,
        class_names: Sequence[str],
        templates: Sequence[str],
        *,
        weights_id: str | None = None,
        cache_dir: str | None = None,
    ) -> torch.Tensor:
        """(T, P, Dt) unit-norm text embeddings (synonyms averaged per template), on the text tower's device.

        With a `weights_id` (pretrained tag or checkpoint identity) the result goes through the `ovcore.text` disk
        cache; random weights have no stable identity and are always encoded.
        """
        if weights_id is None:
            return encode_vocabulary(self.clip, self.tokenizer, list(class_names), list(templates))
        return cached_encode_vocabulary(
            self.clip,
            self.tokenizer,
            list(class_names),
            list(templates),
            model_name=self.model_name,
            weights_id=weights_id,
            cache_dir=cache_dir,
        )
