"""Pseudo-weight synthesizer (paper Sec. 3.3, Eqs. 5-6).

:func:`label_centroids` averages the student features over every label of the fused map F across the whole batch
(Eq. 5). :class:`Synthesizer` turns those centroids (queries) into prototypes with a transformer decoder whose keys
and values are the CLIP CLS tokens; "mlp" (FC-ReLU-FC) and "identity" are the Table 4 ablations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import SynthesizerConfig
from .losses import IGNORE_LABEL

__all__ = ["Synthesizer", "label_centroids"]


def label_centroids(
    features: torch.Tensor, labels: torch.Tensor, num_labels: int, ignore_index: int = IGNORE_LABEL
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5: mean student feature of every label over (B, H, W), at the label resolution.

    Each label pixel takes the feature of the feature cell it falls in (nearest upsampling of R), so the mean is the
    area-weighted mean of the cells; no (B, C, H, W) upsampled tensor is built.

    Args:
        features: (B, C, h, w) student features R.
        labels: (B, H, W) int labels in ``0..num_labels-1`` or ``ignore_index`` (fused labels: -1); other values
            are ignored too.
        num_labels: L.
        ignore_index: Ignored label.

    Returns:
        ``(centroids (L, C), present (L,) bool)``; absent labels get zero rows.
    """
    # float32 sums: under bf16 autocast the per-label pixel totals would round (bf16 is exact only up to 256).
    features = features.float()
    b, c, h, w = features.shape
    hh, ww = labels.shape[-2:]
    dev = features.device
    cy = _nearest_source_index(h, hh, dev)
    cx = _nearest_source_index(w, ww, dev)
    cell = (cy[:, None] * w + cx[None, :]).expand(b, hh, ww)
    bidx = torch.arange(b, device=dev)[:, None, None].expand(b, hh, ww)
    valid = (labels >= 0) & (labels < num_labels) & (labels != ignore_index)
    lab = labels[valid].long()
    flat_cell = bidx[valid] * (h * w) + cell[valid]
    key = lab * (b * h * w) + flat_cell
    uniq, counts = torch.unique(key, return_counts=True)
    lab_u = uniq // (b * h * w)
    cell_u = uniq % (b * h * w)
    rows = features.permute(0, 2, 3, 1).reshape(b * h * w, c)
    weight = counts.to(features.dtype)
    sums = torch.zeros(num_labels, c, device=dev, dtype=features.dtype).index_add(
        0, lab_u, rows[cell_u] * weight[:, None]
    )
    totals = torch.zeros(num_labels, device=dev, dtype=features.dtype).index_add(0, lab_u, weight)
    present = totals > 0
    return sums / totals.clamp_min(1)[:, None], present


def _nearest_source_index(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """The input cell each output pixel reads under ``F.interpolate(mode="nearest")`` of float32 features.

    torch computes ``floor(y * (size_in / size_out))`` with a float32 scale, which is not the exact
    ``floor(y * size_in / size_out)`` for some sizes that are not integer multiples (2 -> 82: pixel 41), so the
    indices are taken from torch itself (float32 holds every index below 2**24 exactly).
    """
    grid = torch.arange(size_in, device=device, dtype=torch.float32).view(1, 1, size_in, 1)
    return F.interpolate(grid, size=(size_out, 1), mode="nearest").view(size_out).long()


class Synthesizer(nn.Module):
    """Centroids -> prototypes.

    Args:
        dim: Embedding dimension C.
        cfg: Synthesizer options.
    """

    def __init__(self, dim: int, cfg: SynthesizerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SynthesizerConfig()
        kind = self.cfg.kind
        self.decoder: nn.TransformerDecoder | None = None
        self.mlp: nn.Sequential | None = None
        if kind == "decoder":
            if dim % self.cfg.heads:
                raise ValueError(f"synthesizer heads ({self.cfg.heads}) must divide the embedding dim ({dim})")
            layer = nn.TransformerDecoderLayer(
                d_model=dim,
                nhead=self.cfg.heads,
                dim_feedforward=int(dim * self.cfg.ffn_ratio),
                dropout=self.cfg.dropout,
                batch_first=True,
            )
            self.decoder = nn.TransformerDecoder(layer, self.cfg.layers)
        elif kind == "mlp":
            self.mlp = nn.Sequential(
                nn.Linear(dim, int(dim * self.cfg.ffn_ratio)), nn.ReLU(), nn.Linear(int(dim * self.cfg.ffn_ratio), dim)
            )
        elif kind != "identity":
            raise ValueError(f"unknown synthesizer kind {kind!r} (expected 'decoder', 'mlp' or 'identity')")

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Prototypes for the centroids.

        Args:
            queries: (L, C) centroids (seen and pseudo labels of the batch).
            memory: (M, C) CLIP CLS tokens (keys and values).

        Returns:
            (L, C) prototypes.
        """
        if self.cfg.detach_queries:
            queries = queries.detach()
        if queries.shape[0] == 0:
            return queries
        if self.decoder is not None:
            return self.decoder(queries[None], memory[None].to(queries.dtype))[0]
        if self.mlp is not None:
            return self.mlp(queries)
        return queries
