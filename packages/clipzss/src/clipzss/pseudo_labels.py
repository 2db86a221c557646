"""PLM pseudo labels (paper Sec. 3.3): unannotated mask, multi-scale K-means, mask fusion, fused labels.

Pipeline for a batch (no gradients; everything comes from the frozen CLIP tokens):

1. :func:`unannotated_mask`: pixels whose training label is not a seen class (unseen->ignore remap), minus crop
   padding; :func:`token_mask` brings it to the CLIP token grid.
2. :func:`clipzss.kmeans.multiscale_seeds` + :func:`clipzss.kmeans.kmeans`: one seeded K-means per image over its
   unannotated tokens.
3. :func:`fuse_clusters`: the NMS-like mask fusion on the centroid cosine similarities (threshold lambda, each
   seed used once).
4. :func:`fuse_labels`: seen labels (compact ids ``0..Ns-1``) plus anonymous pseudo classes ``Ns + j`` written
   into the unannotated pixels; pseudo ids are unique across the batch. Everything else is
   :data:`clipzss.losses.IGNORE_LABEL` (-1): a negative ignore value, because ``Ns + K`` passes 255 on large
   vocabularies (COCO-Stuff: 156 seen + 100 pseudo classes in a batch of 16) and would then collide with a
   255 ignore value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import PLMConfig
from .kmeans import kmeans, multiscale_seeds
from .losses import IGNORE_LABEL

__all__ = [
    "PseudoLabeler",
    "PseudoLabels",
    "drop_absent_pseudo_ids",
    "fuse_clusters",
    "fuse_labels",
    "seen_or_ignore",
    "token_mask",
    "unannotated_mask",
]


def unannotated_mask(
    label: torch.Tensor, pad_mask: torch.Tensor | None = None, ignore_index: int = IGNORE_LABEL
) -> torch.Tensor:
    """Pixels the PLM may pseudo-label: ignore after the unseen->ignore remap, excluding crop padding.

    Args:
        label: (B, H, W) int labels.
        pad_mask: (B, H, W) bool, True on crop padding; None = no padding.
        ignore_index: Ignore label of ``label``.

    Returns:
        (B, H, W) bool.
    """
    mask = label == ignore_index
    if pad_mask is not None:
        if pad_mask.shape != label.shape:
            raise ValueError(f"pad_mask {tuple(pad_mask.shape)} does not match label {tuple(label.shape)}")
        mask = mask & ~pad_mask.bool()
    return mask


def token_mask(pixel_mask: torch.Tensor, grid: tuple[int, int], rule: str = "majority") -> torch.Tensor:
    """Pixel mask -> token-grid mask.

    Args:
        pixel_mask: (B, H, W) bool.
        grid: (h, w) token grid.
        rule: "majority" (more than half of the token's pixels, area interpolation) or "nearest".

    Returns:
        (B, h, w) bool.
    """
    m = pixel_mask.float()[:, None]
    if rule == "majority":
        return F.interpolate(m, size=grid, mode="area")[:, 0] > 0.5
    if rule == "nearest":
        return F.interpolate(m, size=grid, mode="nearest")[:, 0] > 0.5
    raise ValueError(f"unknown token rule {rule!r} (expected 'majority' or 'nearest')")


def fuse_clusters(sim: np.ndarray | torch.Tensor, threshold: float = 0.8, mode: str = "one_hop") -> np.ndarray:
    """Mask fusion of the paper (§3.3): group clusters whose centroids are similar.

    ``one_hop`` (the paper's rule, Sec. 3.3): repeatedly take the largest similarity among unused clusters
    (diagonal excluded); if it is not above ``threshold`` stop, else take its row i and merge i with every unused k
    with ``sim[i, k] > threshold``; all members become used (each seed and mask is used once). Every remaining
    cluster is its own class. ``transitive``: connected components of ``sim > threshold``.

    Args:
        sim: (N, N) cosine similarities between the K-means centroids.
        threshold: lambda.
        mode: "one_hop" or "transitive".

    Returns:
        (N,) int64 group id per cluster, ids ``0..G-1``; merged groups come first, in fusion order.
    """
    s = sim.detach().float().cpu().numpy() if isinstance(sim, torch.Tensor) else np.asarray(sim, dtype=np.float64)
    n = s.shape[0]
    group = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return group
    if mode == "transitive":
        adj = s > threshold
        g = 0
        for start in range(n):
            if group[start] >= 0:
                continue
            stack = [start]
            group[start] = g
            while stack:
                i = stack.pop()
                for k in np.nonzero(adj[i] & (group < 0))[0]:
                    group[k] = g
                    stack.append(int(k))
            g += 1
        # Components are numbered in order of their smallest member: ids are already 0..G-1 by first appearance.
        return group
    if mode != "one_hop":
        raise ValueError(f"unknown fusion mode {mode!r} (expected 'one_hop' or 'transitive')")
    work = s.astype(np.float64).copy()
    np.fill_diagonal(work, -np.inf)
    g = 0
    while True:
        flat = int(np.argmax(work))
        i = flat // n
        if not work.flat[flat] > threshold:
            break
        members = [i, *np.nonzero(work[i] > threshold)[0].tolist()]
        group[members] = g
        g += 1
        # Used seeds leave the matrix: their rows and columns cannot be used again.
        work[members, :] = -np.inf
        work[:, members] = -np.inf
    for i in np.nonzero(group < 0)[0]:
        group[i] = g
        g += 1
    return group


def fuse_labels(
    label: torch.Tensor,
    token_labels: torch.Tensor,
    unannotated: torch.Tensor,
    num_seen: int,
) -> tuple[torch.Tensor, int]:
    """Fused label map F: seen labels plus pseudo classes ``num_seen + j`` on unannotated pixels.

    Every other pixel is :data:`IGNORE_LABEL` (-1), which no class id can reach (``num_seen + K`` may exceed 255).

    Args:
        label: (B, H, W) compact labels (seen ids ``0..num_seen-1``; any other value is not a seen class).
        token_labels: (B, h, w) int64 batch-unique pseudo ids ``0..K-1`` per token, -1 for none.
        unannotated: (B, H, W) bool pixels that may receive a pseudo label.
        num_seen: Ns.

    Returns:
        ``(F (B, H, W) int64, K)`` with pseudo ids renumbered to ``0..K-1`` over the classes that kept pixels.
    """
    h, w = label.shape[-2:]
    up = F.interpolate(token_labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
    pseudo = unannotated & (up >= 0)
    fused = seen_or_ignore(label, num_seen)
    if not bool(pseudo.any()):
        return fused, 0
    ids, inv = torch.unique(up[pseudo], return_inverse=True)
    fused[pseudo] = num_seen + inv
    return fused, int(ids.numel())


def seen_or_ignore(label: torch.Tensor, num_seen: int) -> torch.Tensor:
    """int64 copy of ``label``; every value outside the seen ids ``0..num_seen-1`` becomes :data:`IGNORE_LABEL`."""
    label = label.long()
    return label.masked_fill((label < 0) | (label >= num_seen), IGNORE_LABEL)


def drop_absent_pseudo_ids(target: torch.Tensor, num_seen: int) -> tuple[torch.Tensor, int]:
    """Renumber the pseudo ids that still own a pixel of ``target`` to ``num_seen..num_seen+K'-1`` (order kept).

    Down-sampling F to the feature grid (``loss.loss_resolution="feature"``, nearest) can miss a small pseudo
    class entirely; such a class then has no centroid, no prototype and no logit channel, so it contributes nothing
    to the losses, as if its pixels had been ignore.

    Args:
        target: (B, H, W) fused labels (seen ``0..Ns-1``, pseudo ``>= Ns``, ignore negative).
        num_seen: Ns.

    Returns:
        ``(target, K')``: a new tensor, and the number of pseudo classes left.
    """
    pseudo = target >= num_seen
    if not bool(pseudo.any()):
        return target.clone(), 0
    ids, inv = torch.unique(target[pseudo], return_inverse=True)
    out = target.clone()
    out[pseudo] = num_seen + inv
    return out, int(ids.numel())


@dataclass
class PseudoLabels:
    """Output of :class:`PseudoLabeler`.

    Attributes:
        fused: (B, H, W) int64 fused labels (seen ``0..Ns-1``, pseudo ``Ns..Ns+K-1``, ignore -1).
        num_pseudo: K.
        token_labels: (B, h, w) pseudo id per token (-1 none), before the pixel-level renumbering.
        unannotated_tokens: (B, h, w) bool.
        num_seeds: (B,) kept seeds per image.
        num_clusters: (B,) non-empty clusters per image.
    """

    fused: torch.Tensor
    num_pseudo: int
    token_labels: torch.Tensor
    unannotated_tokens: torch.Tensor
    num_seeds: torch.Tensor
    num_clusters: torch.Tensor


class PseudoLabeler:
    """Pseudo labels of the PLM for a batch (stateless; configured by :class:`clipzss.config.PLMConfig`).

    Args:
        cfg: PLM options.
    """

    def __init__(self, cfg: PLMConfig | None = None) -> None:
        self.cfg = cfg or PLMConfig()

    @torch.no_grad()
    def __call__(
        self, dense: torch.Tensor, label: torch.Tensor, num_seen: int, pad_mask: torch.Tensor | None = None
    ) -> PseudoLabels:
        """Compute the fused labels.

        Args:
            dense: (B, D, h, w) CLIP dense tokens (projected; normalised here).
            label: (B, H, W) compact labels: seen ``0..Ns-1``; any other value (-1, 255) is unannotated.
            num_seen: Ns.
            pad_mask: (B, H, W) bool crop padding, or None.

        Returns:
            A :class:`PseudoLabels`.
        """
        cfg = self.cfg
        b, d, h, w = dense.shape
        label = seen_or_ignore(label, num_seen)
        pixel_free = unannotated_mask(label, pad_mask, IGNORE_LABEL)
        tok_free = token_mask(pixel_free, (h, w), cfg.token_rule)
        tokens = F.normalize(dense.float(), dim=1)
        seeds, seed_keep = multiscale_seeds(
            tokens, tok_free, windows=tuple(cfg.windows), mode=cfg.seed_mode, keep=cfg.seed_keep, normalize=True
        )
        x = tokens.flatten(2).transpose(1, 2)
        x_mask = tok_free.reshape(b, -1)
        res = kmeans(
            x,
            seeds,
            x_mask=x_mask,
            seed_mask=seed_keep,
            num_iters=cfg.kmeans_iters,
            metric=cfg.kmeans_metric,
            backend=cfg.kmeans_backend,
        )
        alive = res.counts > max(cfg.min_pseudo_tokens - 1, 0)
        cent = F.normalize(res.centroids, dim=-1)
        sims = torch.bmm(cent, cent.transpose(1, 2)).cpu()
        alive_cpu, assign_cpu = alive.cpu(), res.assign.cpu()
        token_labels = torch.full((b, h * w), -1, dtype=torch.long)
        offset = 0
        for i in range(b):
            cols = alive_cpu[i].nonzero()[:, 0]
            if cols.numel() == 0:
                continue
            groups = fuse_clusters(sims[i][cols][:, cols], cfg.fusion_threshold, cfg.fusion_mode)
            lut = torch.full((res.counts.shape[1],), -1, dtype=torch.long)
            lut[cols] = torch.from_numpy(groups) + offset
            a = assign_cpu[i]
            ok = a >= 0
            token_labels[i, ok] = lut[a[ok]]
            offset += int(groups.max()) + 1
        token_labels = token_labels.reshape(b, h, w).to(label.device)
        fused, k = fuse_labels(label, token_labels, pixel_free, num_seen)
        return PseudoLabels(
            fused=fused,
            num_pseudo=k,
            token_labels=token_labels,
            unannotated_tokens=tok_free,
            num_seeds=seed_keep.sum(1),
            num_clusters=alive.sum(1),
        )
