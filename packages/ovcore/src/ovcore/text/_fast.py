"""``encode_text`` of an open_clip CLIP on the used part of the context only.

open_clip pads every prompt to 77 tokens and runs the text transformer on all of them, but its attention mask is
causal and the embedding is read at the end-of-text token (the highest token id, ``text_pool_type="argmax"``): no
position after the longest prompt of a batch can change the result. Prompts of a vocabulary are 8-20 tokens long,
so running on ``max(end-of-text position) + 1`` positions does about 5x less work for the same embeddings (equal
up to float rounding; tests/ovcore/test_text_class_cache.py checks it against ``encode_text``).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["encode_text"]

_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")


def _is_causal(mask: Any) -> bool:
    """True when ``mask`` is the additive causal mask (0 on and below the diagonal, -inf above)."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones_like(mask, dtype=torch.bool).triu(1)
    return bool(torch.isneginf(mask[upper]).all() and (mask[~upper] == 0).all())


def supports_truncation(clip_model: Any) -> bool:
    """Whether `clip_model` is an open_clip CLIP whose text tower can run on a truncated context."""
    if not all(hasattr(clip_model, name) for name in _PARTS):
        return False
    if getattr(clip_model, "text_pool_type", "argmax") != "argmax":
        return False
    return _is_causal(clip_model.attn_mask)


def _truncated(clip_model: Any, tokens: torch.Tensor) -> torch.Tensor:
    end = tokens.argmax(dim=-1)  # end-of-text positions (the highest id of each row)
    n = int(end.max()) + 1
    text = tokens[:, :n]
    cast = clip_model.transformer.get_cast_dtype()
    x = clip_model.token_embedding(text).to(cast) + clip_model.positional_embedding[:n].to(cast)
    x = clip_model.transformer(x, attn_mask=clip_model.attn_mask[:n, :n])
    x = clip_model.ln_final(x)[torch.arange(x.shape[0], device=x.device), end]
    projection = getattr(clip_model, "text_projection", None)
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Module) else x @ projection


def encode_text(clip_model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``clip_model.encode_text(tokens)`` (not normalised), on the truncated context when that is exact.

    Models that are not a causal, argmax-pooled open_clip CLIP (e.g. test doubles, HF text towers) use their own
    ``encode_text``.
    """
    if tokens.ndim != 2 or tokens.shape[0] == 0 or not supports_truncation(clip_model):
        return clip_model.encode_text(tokens)
    return _truncated(clip_model, tokens)
