"""Category early rejection (SED paper, Sec. 3.3, Fig. 4), per image, on the `ovkernels` top-k / compaction /
gather kernels.

Unlike the official code, the selection is made per image (each image keeps its own classes, so batch > 1 works),
it runs on any device, and the rows of every tensor that the next decoder layer needs are gathered together so
that later stages (cost guidance K_l, skip terms) are only ever computed for survivors.
"""

from __future__ import annotations

import torch

from ovkernels import compact_categories, gather_categories, topk_category_mask

__all__ = ["select_categories", "scatter_probabilities"]


def select_categories(logits: torch.Tensor, k: int, *rows: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Keep the union over pixels of each pixel's top-k classes of one image.

    Args:
        logits: (T, h, w) auxiliary-head logits of the image's current classes.
        k: classes kept per pixel (>= 1).
        *rows: tensors (T, C, h', w') whose rows follow the same classes (channels_last rows stay channels_last).

    Returns:
        (kept positions (T',) into the current class list, increasing; the gathered tensors (T', C, h', w')).
    """
    mask = topk_category_mask(logits.unsqueeze(0), k)
    if bool(mask.all()):
        return torch.arange(mask.shape[1], device=logits.device), list(rows)
    index, offsets = compact_categories(mask)
    out = []
    for t in rows:
        # Gather on the (T, h, w, C) view: for channels_last rows each gathered row is one contiguous block.
        picked = gather_categories(t.permute(0, 2, 3, 1).unsqueeze(0), index, offsets)
        out.append(picked.permute(0, 3, 1, 2))
    return index, out


def scatter_probabilities(
    logits: torch.Tensor, class_ids: torch.Tensor, num_classes: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Sigmoid of the survivors' logits (T', H, W) written at `class_ids` of a zero (T, H, W) map.

    Rejected classes get probability exactly 0, as in the official fast path.
    """
    if out is None:
        out = logits.new_zeros(num_classes, *logits.shape[1:])
    out[class_ids] = logits.sigmoid()
    return out
