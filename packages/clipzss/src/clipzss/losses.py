"""Classifier of Eq. 7 and the losses of Eq. 8 (paper Sec. 3.3-3.4).

* :func:`classifier_logits`: ``cat(alpha * R_hat . T_seen, beta * cos(R, P_pseudo))``.
* :func:`nel_loss`: ZegCLIP's NEL = sigmoid focal (x100) + dice (x1) on one-hot targets of the fused labels;
  ignored pixels get an all-zero target and stay in the focal term, as in ZegCLIP.
* :func:`ce_loss`: softmax cross-entropy on the fused labels.
* :func:`bce_prototype_loss`: L_bce of Eq. 6, seen prototypes against the seen text embeddings.

Labels here are fused labels: seen ``0..Ns-1``, pseudo ``Ns..Ns+K-1``, ignore :data:`IGNORE_LABEL` (-1). The ignore
value is negative so that no class id can reach it, however many pseudo classes a batch has (the dataset's 255 is
read only at the model's input, see ``CLIPZSS.compact_labels``).

Every loss is finite on empty inputs (no valid pixel, no seen prototype): it returns a zero that is still connected
to the graph, so DDP and the engine see the same parameters every step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = [
    "IGNORE_LABEL",
    "bce_prototype_loss",
    "ce_loss",
    "classifier_logits",
    "dice_loss",
    "nel_loss",
    "one_hot_targets",
    "sigmoid_focal_loss",
]

IGNORE_LABEL = -1
"""Ignore value of the compact and fused labels: below every class id, so Ns + K can never reach it."""


def classifier_logits(
    features: torch.Tensor,
    text: torch.Tensor,
    alpha: torch.Tensor | float,
    prototypes: torch.Tensor | None = None,
    beta: float = 2.0,
    *,
    normalize_features: bool = True,
) -> torch.Tensor:
    """Eq. 7 logits.

    Args:
        features: (B, C, h, w) student features R.
        text: (Ns, C) L2-normalised seen text embeddings (all T classes at inference, see ``segmenter``).
        alpha: Scale of the text logits (learnable in the model).
        prototypes: (K, C) pseudo prototypes, or None / empty.
        beta: Scale of the cosine prototype logits.
        normalize_features: L2-normalise R per pixel for the text branch (the prototype branch is always cosine).

    Returns:
        (B, Ns + K, h, w).
    """
    r = F.normalize(features, dim=1) if normalize_features else features
    out = alpha * torch.einsum("bchw,tc->bthw", r, text.to(r.dtype))
    if prototypes is not None and prototypes.shape[0] > 0:
        # Normalised once: the text branch's R already is unless normalize_features is off.
        r_hat = r if normalize_features else F.normalize(features, dim=1)
        p = F.normalize(prototypes, dim=-1).to(r.dtype)
        out = torch.cat([out, beta * torch.einsum("bchw,kc->bkhw", r_hat, p)], 1)
    return out


def _zero(x: torch.Tensor) -> torch.Tensor:
    # A graph-connected zero: keeps every parameter in the backward pass.
    return x.sum() * 0.0


def ce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Softmax cross-entropy, mean over valid pixels (0 when there is none).

    Args:
        logits: (B, K, H, W).
        target: (B, H, W) int64.
        ignore_index: Ignore label.
    """
    valid = (target != ignore_index) & (target >= 0) & (target < logits.shape[1])
    if not bool(valid.any()):
        return _zero(logits)
    return F.cross_entropy(logits, target.masked_fill(~valid, ignore_index), ignore_index=ignore_index)


def one_hot_targets(target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """(B, H, W) labels -> (B, K, H, W) float one-hot; ignored / out-of-range pixels are all zero."""
    valid = (target >= 0) & (target < num_classes) & (target != ignore_index)
    oh = F.one_hot(target.masked_fill(~valid, 0).long(), num_classes).permute(0, 3, 1, 2).float()
    return oh * valid[:, None].float()


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, num_masks: float, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """ZegCLIP/Mask2Former sigmoid focal loss: mean over pixels per (image, class), summed, / num_masks.

    Args:
        logits: (N, P) mask logits (N = image x class pairs).
        targets: (N, P) binary targets.
        num_masks: Normaliser.
        alpha: Positive weight (negative: 1 - alpha); < 0 disables it.
        gamma: Focusing exponent.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Dice on sigmoid probabilities with +1 smoothing, summed over rows, / num_masks.

    Args:
        logits: (N, P).
        targets: (N, P).
        num_masks: Normaliser.
    """
    prob = logits.sigmoid()
    num = 2 * (prob * targets).sum(-1)
    den = prob.sum(-1) + targets.sum(-1)
    return (1 - (num + 1) / (den + 1)).sum() / num_masks


def nel_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = IGNORE_LABEL,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    focal_weight: float = 100.0,
    dice_weight: float = 1.0,
    distributed: bool = True,
) -> torch.Tensor:
    """ZegCLIP's NEL loss on the Eq. 7 logits and the fused labels (paper Sec. 3.4).

    Focal over every (image, channel) pair (ignored pixels are negatives of every class), dice over the (image,
    class) pairs present in the image; both divided by ``num_masks`` = present pairs (averaged over processes,
    at least 1).

    Args:
        logits: (B, K, H, W).
        target: (B, H, W).
        ignore_index: Ignore label.
        focal_alpha: Focal alpha.
        focal_gamma: Focal gamma (reading (b) of the paper's gamma).
        focal_weight: ZegCLIP ``mask_weight`` (100 in its zero-shot configs).
        dice_weight: ZegCLIP ``dice_weight`` (1).
        distributed: Average num_masks over processes when torch.distributed is initialised.

    Returns:
        Scalar ``focal_weight * focal + dice_weight * dice``.
    """
    b, k = logits.shape[:2]
    if k == 0:
        return _zero(logits)
    oh = one_hot_targets(target, k, ignore_index)
    present = oh.flatten(2).amax(-1) > 0
    num_masks = present.sum().float()
    if distributed and dist.is_available() and dist.is_initialized():
        dist.all_reduce(num_masks)
        num_masks = num_masks / dist.get_world_size()
    num_masks = num_masks.clamp_min(1.0).item()
    x = logits.flatten(2).reshape(b * k, -1).float()
    t = oh.flatten(2).reshape(b * k, -1)
    focal = sigmoid_focal_loss(x, t, num_masks, focal_alpha, focal_gamma)
    rows = present.reshape(-1)
    dice = dice_loss(x[rows], t[rows], num_masks) if bool(rows.any()) else _zero(x)
    return focal_weight * focal + dice_weight * dice


def bce_prototype_loss(
    prototypes: torch.Tensor,
    class_ids: torch.Tensor,
    text: torch.Tensor,
    scale: torch.Tensor | float,
    bias: torch.Tensor | float = 0.0,
    mode: str = "full",
) -> torch.Tensor:
    """L_bce (our reading of Eq. 6, paper Sec. 3.3): seen prototypes against the seen text embeddings.

    Logit ``scale * cos(p, t) + bias``. "full": multi-label BCE, target 1 for the prototype's own class text and 0
    for the other seen texts, averaged over pairs. "positive": ``-log sigmoid`` of the own-class logit only.

    Args:
        prototypes: (S, C) seen prototypes.
        class_ids: (S,) their compact seen ids (rows of ``text``).
        text: (Ns, C) seen text embeddings.
        scale: Logit scale.
        bias: Logit bias.
        mode: "full" or "positive".

    Returns:
        Scalar (0 when there is no seen prototype).
    """
    if mode not in ("full", "positive"):
        raise ValueError(f"unknown BCE mode {mode!r} (expected 'full' or 'positive')")
    if prototypes.shape[0] == 0:
        return _zero(prototypes)
    logits = scale * F.normalize(prototypes, dim=-1) @ F.normalize(text.to(prototypes.dtype), dim=-1).T + bias
    if mode == "positive":
        own = logits.gather(1, class_ids[:, None].long())[:, 0]
        return -F.logsigmoid(own).mean()
    target = F.one_hot(class_ids.long(), text.shape[0]).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)
