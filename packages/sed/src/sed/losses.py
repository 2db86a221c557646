"""SED training loss (official ``sed/sed_model.py``): per-class binary cross-entropy with logits, one-hot targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sed_bce_loss"]


def sed_bce_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, ignore_index: int = 255, ignore_mode: str = "negative"
) -> torch.Tensor:
    """Mean BCE-with-logits of (B, T, h, w) logits, bilinearly upsampled to the (B, H, W) labels.

    ``bce(x, y) = softplus(x) - x * y`` and the target is one-hot, so the loss is the sum of softplus over all
    elements minus the logit of the true class at every labelled pixel: the (B, H, W, T) one-hot tensor of the
    official code is never built.

    Args:
        logits: raw scores (B, T, h, w).
        labels: int64 (B, H, W) class ids in [0, T) or `ignore_index`.
        ignore_index: label value of unlabelled pixels.
        ignore_mode: ``"negative"`` (official): ignored pixels have an all-zero target and count in the mean;
            ``"mask"``: they are left out (mean over labelled pixels x T).

    Returns:
        scalar loss.

    Raises:
        ValueError: label values outside [0, T) other than `ignore_index`, or an unknown mode.
    """
    if ignore_mode not in ("negative", "mask"):
        raise ValueError(f"ignore_mode must be 'negative' or 'mask', got {ignore_mode!r}")
    if labels.dim() != 3 or logits.dim() != 4 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"expected logits (B, T, h, w) and labels (B, H, W), got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    num_classes = logits.shape[1]
    x = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False).float()
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        raise ValueError(
            f"labels hold values outside [0, {num_classes}) that are not ignore_index={ignore_index}: "
            f"{torch.unique(labels[bad]).tolist()[:10]}"
        )
    target = torch.where(valid, labels, torch.zeros_like(labels))
    positive = x.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, H, W): logit of the true class
    softplus = F.softplus(x)
    if ignore_mode == "negative":
        total = softplus.sum() - positive[valid].sum()
        return total / x.numel()
    count = valid.sum() * num_classes
    total = softplus.sum(1)[valid].sum() - positive[valid].sum()
    return total / count.clamp_min(1)
