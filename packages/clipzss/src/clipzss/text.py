"""Class text embeddings for the classifier, and a text-only CLIP encoder for inference.

Training takes the text embeddings from the teacher's CLIP text tower. Inference must not build the CLIP image tower
(paper §3.4), so new vocabularies are encoded by :class:`TextTower`, which builds only open_clip's text transformer
and loads only the text weights (CLIP state-dict keys outside ``visual.*`` map one-to-one onto open_clip's
``TextTransformer``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

__all__ = [
    "TextTower",
    "class_embeddings",
    "read_text_weights",
    "text_state_dict",
    "uses_quick_gelu",
]

_NON_TEXT_KEYS = ("logit_scale", "logit_bias")


def _is_text_key(key: str) -> bool:
    return not key.startswith("visual.") and key not in _NON_TEXT_KEYS


def text_state_dict(clip_model: nn.Module) -> dict[str, torch.Tensor]:
    """The text-tower weights of an open_clip CLIP (every key outside ``visual.*`` and the logit scale/bias).

    Args:
        clip_model: open_clip CLIP (non-custom text tower).

    Returns:
        A detached CPU state dict in open_clip's ``TextTransformer`` key names.
    """
    return {k: v.detach().cpu().clone() for k, v in clip_model.state_dict().items() if _is_text_key(k)}


def read_text_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The text-tower weights of a CLIP checkpoint file (``ovcore.clip.read_state_dict``), image tower left out.

    Args:
        path: A CLIP weights file (or a file holding only the text weights).

    Returns:
        A CPU state dict for :class:`TextTower`.
    """
    from ovcore.clip import read_state_dict

    return {k: v for k, v in read_state_dict(path).items() if _is_text_key(k)}


def uses_quick_gelu(clip_model: nn.Module) -> bool:
    """Whether the CLIP text tower uses QuickGELU (OpenAI weights)."""
    return any(isinstance(m, QuickGELU) for m in clip_model.transformer.modules())


class TextTower(nn.Module):
    """open_clip's text transformer alone: ``encode_text(tokens) -> (N, D)``.

    Args:
        model_name: open_clip architecture (its ``text_cfg`` and ``embed_dim``).
        state_dict: Text weights (:func:`text_state_dict`); None keeps the random init.
        quick_gelu: Use QuickGELU (OpenAI weights).
    """

    def __init__(
        self, model_name: str, state_dict: Mapping[str, torch.Tensor] | None = None, *, quick_gelu: bool = False
    ) -> None:
        super().__init__()
        import ovcore.clip  # noqa: F401  (registers the tiny configs with open_clip)

        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise ValueError(f"unknown open_clip model {model_name!r}")
        if "hf_model_name" in cfg.get("text_cfg", {}) or cfg.get("custom_text", False):
            raise ValueError(
                f"{model_name!r} has a custom/HF text tower; only the built-in CLIP text tower is supported"
            )
        from open_clip.model import _build_text_tower

        self.model_name = model_name
        self.text = _build_text_tower(
            cfg["embed_dim"], cfg["text_cfg"], quick_gelu=quick_gelu or cfg.get("quick_gelu", False)
        )
        if state_dict is not None:
            missing, unexpected = self.text.load_state_dict(dict(state_dict), strict=False)
            missing = [k for k in missing if k != "attn_mask"]
            if missing or unexpected:
                raise ValueError(f"text weights do not fit {model_name!r}: missing {missing}, unexpected {unexpected}")
        self.text.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(N, L) tokens -> (N, D) text embeddings."""
        out = self.text(tokens)
        if isinstance(out, tuple):
            out = out[0]
        return F.normalize(out, dim=-1) if normalize else out


def class_embeddings(
    encoder: Any,
    tokenizer: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    *,
    model_name: str | None = None,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(T, D) classifier embeddings: ovcore.text per-template embeddings, averaged over templates, re-normalised.

    Args:
        encoder: Anything with ``encode_text`` (an open_clip CLIP or a :class:`TextTower`).
        tokenizer: open_clip tokenizer.
        class_names: T names.
        templates: Prompt templates.
        model_name: open_clip architecture (cache key).
        weights: The CLIP weights tag/file (cache key); None (random init) disables the disk cache.
        cache_dir: ovcore.text cache folder; None disables the disk cache.
        device: Where to return the embeddings.

    Returns:
        float32 (T, D), unit norm.
    """
    from ovcore.text import cached_encode_vocabulary, encode_vocabulary, weights_id_of

    if cache_dir is not None and weights is not None and model_name is not None:
        emb = cached_encode_vocabulary(
            encoder,
            tokenizer,
            list(class_names),
            list(templates),
            model_name=model_name,
            weights_id=weights_id_of(weights),
            cache_dir=cache_dir,
            device=device,
        )
    else:  # ovcore's default progress: silent for short vocabularies, a bar or log lines for long ones
        emb = encode_vocabulary(encoder, tokenizer, list(class_names), list(templates), device=device)
    return F.normalize(emb.float().mean(1), dim=-1)
