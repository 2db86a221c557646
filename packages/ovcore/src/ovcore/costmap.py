"""Cosine image-text cost map (SED paper Sec. 3.1, Eq. 1).

``C[b, p, t, i, j] = <F̂v[b, :, i, j], Ê[b, t, p, :]>`` with both sides L2-normalised and no temperature. The class
axis T is processed in chunks written into a preallocated output, so the temporary memory is one chunk's worth.
The template-averaged map uses the linearity of the mean: ``mean_p <f, e_p> = <f, mean_p e_p>``, so it never builds
the P axis at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cost_map", "mean_cost_map"]


def _prepare(
    image_emb: torch.Tensor, text_emb: torch.Tensor, chunk_size: int | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Normalise both sides; returns image (B, D, HW), text (T, P, D) or (B, T, P, D), and the chunk size."""
    if image_emb.ndim != 4:
        raise ValueError(f"image_emb must be (B, D, H, W), got {tuple(image_emb.shape)}")
    if text_emb.ndim not in (3, 4):
        raise ValueError(f"text_emb must be (T, P, D) or (B, T, P, D), got {tuple(text_emb.shape)}")
    b, d = image_emb.shape[:2]
    if text_emb.shape[-1] != d:
        raise ValueError(f"embedding sizes differ: image D={d}, text D={text_emb.shape[-1]}")
    if text_emb.ndim == 4 and text_emb.shape[0] != b:
        raise ValueError(f"batch sizes differ: image B={b}, text B={text_emb.shape[0]}")
    num_classes = text_emb.shape[-3]
    if num_classes == 0 or text_emb.shape[-2] == 0:
        raise ValueError(f"text_emb has no classes or no templates: {tuple(text_emb.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size}")
    dtype = torch.promote_types(image_emb.dtype, text_emb.dtype)
    image = F.normalize(image_emb.to(dtype), dim=1).flatten(2)
    text = F.normalize(text_emb.to(dtype), dim=-1)
    return image, text, min(chunk_size or num_classes, num_classes)


def _chunk_scores(weights: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``weights`` (R, D) or (B, R, D) against ``image`` (B, D, HW) -> (B, R, HW)."""
    return torch.matmul(weights, image)


def cost_map(image_emb: torch.Tensor, text_emb: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    """Per-template cosine similarity between every location and every class.

    Args:
        image_emb: dense image embedding (B, D, H, W) (e.g. SED's Fv), not necessarily normalised.
        text_emb: class embeddings (T, P, D), shared by the batch, or (B, T, P, D).
        chunk_size: classes per chunk; None computes all T at once.

    Returns:
        (B, P, T, H, W) cosines in [-1, 1], in the promoted dtype of the inputs; differentiable.

    Raises:
        ValueError: shapes that do not fit, or a non-positive chunk size.
    """
    image, text, chunk = _prepare(image_emb, text_emb, chunk_size)
    b, _, h, w = image_emb.shape
    num_classes, num_templates = text.shape[-3], text.shape[-2]
    out = None
    for start in range(0, num_classes, chunk):
        part = text[..., start : start + chunk, :, :]
        n = part.shape[-3]
        # (n, P, D) -> (P * n, D) rows in (p, t) order, so the result reshapes straight to (B, P, n, HW)
        weights = part.transpose(-3, -2).reshape(*part.shape[:-3], num_templates * n, -1)
        scores = _chunk_scores(weights, image).view(b, num_templates, n, h * w)
        if chunk >= num_classes:
            return scores.view(b, num_templates, num_classes, h, w)
        if out is None:
            out = scores.new_empty(b, num_templates, num_classes, h * w)
        out[:, :, start : start + n] = scores
    assert out is not None
    return out.view(b, num_templates, num_classes, h, w)


def mean_cost_map(image_emb: torch.Tensor, text_emb: torch.Tensor, *, chunk_size: int | None = None) -> torch.Tensor:
    """Template-averaged cost map: ``cost_map(...).mean(1)`` without materialising the template axis.

    Args:
        image_emb: (B, D, H, W).
        text_emb: (T, P, D) or (B, T, P, D).
        chunk_size: classes per chunk; None computes all T at once.

    Returns:
        (B, T, H, W).
    """
    image, text, chunk = _prepare(image_emb, text_emb, chunk_size)
    b, _, h, w = image_emb.shape
    num_classes = text.shape[-3]
    text_mean = text.mean(dim=-2)  # (T, D) or (B, T, D): the mean of cosines is the cosine with the mean
    if chunk >= num_classes:
        return _chunk_scores(text_mean, image).view(b, num_classes, h, w)
    out = None
    for start in range(0, num_classes, chunk):
        scores = _chunk_scores(text_mean[..., start : start + chunk, :], image)
        if out is None:  # allocated from the first chunk so autocast's output dtype is kept
            out = scores.new_empty(b, num_classes, h * w)
        out[:, start : start + scores.shape[1]] = scores
    assert out is not None
    return out.view(b, num_classes, h, w)
