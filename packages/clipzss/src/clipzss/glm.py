"""Global Learning Module (paper Sec. 3.2, Eqs. 1-3).

* :func:`attention_pool`: parameter-free attention pooling, ``w_b = softmax_L(s_b . r_{b,l} / sqrt(C))`` and
  ``s_hat_b = sum_l w_{b,l} r_{b,l}`` (each image's own CLS is the query over its own dense features).
* :func:`info_nce`: InfoNCE at temperature tau on cosine similarities: the positive of ``s_hat_i`` is ``s_i``, the
  negatives are the other CLS tokens of the (gathered) batch and the CLS-token bank.
* :class:`CLSTokenBank`: FIFO of detached CLS tokens of the last ``n`` iterations (or tokens).
* :class:`GlobalLearningModule`: the three together, with the cross-process gather of negatives.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ovcore.attention import attention

from .config import GLMConfig

__all__ = [
    "CLSTokenBank",
    "GlobalLearningModule",
    "attention_pool",
    "gather_no_grad",
    "info_nce",
    "pool_features",
]


def attention_pool(
    features: torch.Tensor,
    query: torch.Tensor,
    *,
    normalize_query: bool = False,
    normalize_keys: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """Eqs. 1-2: softmax over locations of ``query . features / sqrt(C)``, then the weighted sum of the features.

    Args:
        features: (B, C, L) or (B, C, h, w) dense features R (keys and values).
        query: (B, C) CLS tokens S.
        normalize_query: L2-normalise S inside the softmax.
        normalize_keys: L2-normalise R inside the softmax (the values stay raw).
        backend: attention backend (:func:`ovcore.attention.attention`): SDPA by default, "xformers", "math".

    Returns:
        (B, C) reconstructed CLS tokens.
    """
    r = features.flatten(2)
    if query.shape != r.shape[:2]:
        raise ValueError(f"query {tuple(query.shape)} does not match features {tuple(features.shape)}")
    q = F.normalize(query, dim=-1) if normalize_query else query
    k = F.normalize(r, dim=1) if normalize_keys else r
    # One query per image, a single head: (B, 1, 1, C) against (B, 1, L, C) keys and values.
    values = r.transpose(1, 2)[:, None]
    out = attention(q.to(k.dtype)[:, None, None], k.transpose(1, 2)[:, None], values, scale=1 / math.sqrt(r.shape[1]),
                    backend=backend)
    return out[:, 0, 0]


def pool_features(
    features: torch.Tensor,
    query: torch.Tensor,
    mode: str = "attention",
    *,
    normalize_query: bool = False,
    normalize_keys: bool = False,
) -> torch.Tensor:
    """Attention pooling or the mean / max ablations of Table 3.

    Args:
        features: (B, C, ...) dense features.
        query: (B, C) CLS tokens (used by "attention" only).
        mode: "attention", "mean" or "max".
        normalize_query: See :func:`attention_pool`.
        normalize_keys: See :func:`attention_pool`.

    Returns:
        (B, C).
    """
    if mode == "attention":
        return attention_pool(features, query, normalize_query=normalize_query, normalize_keys=normalize_keys)
    if mode == "mean":
        return features.flatten(2).mean(-1)
    if mode == "max":
        return features.flatten(2).amax(-1)
    raise ValueError(f"unknown GLM pooling {mode!r} (expected 'attention', 'mean' or 'max')")


def info_nce(
    pred: torch.Tensor,
    keys: torch.Tensor,
    positive_index: torch.Tensor,
    temperature: float = 0.07,
) -> torch.Tensor:
    """InfoNCE (Eq. 3 with the -log and the parenthesis fixed): mean over i of
    ``-log exp(k_p(i) . p_i / tau) / sum_j exp(k_j . p_i / tau)`` on L2-normalised vectors.

    Args:
        pred: (B, C) reconstructed CLS tokens (gradients flow here).
        keys: (M, C) every candidate: the batch's CLS tokens (gathered) and the bank.
        positive_index: (B,) index in ``keys`` of each prediction's own CLS token.
        temperature: tau.

    Returns:
        Scalar loss.
    """
    logits = F.normalize(pred, dim=-1) @ F.normalize(keys.to(pred.dtype), dim=-1).T / temperature
    return F.cross_entropy(logits, positive_index)


def gather_no_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x`` (B_r, C) from every process (different B_r allowed); no gradient flows through.

    Args:
        x: Local rows.

    Returns:
        ``(all rows in rank order, offset of this process's rows)``; without torch.distributed, ``(x, 0)``.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s.item()) for s in sizes]
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    out = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    rows = torch.cat([o[:c] for o, c in zip(out, counts, strict=False)], 0)
    return rows, sum(counts[:rank])


class CLSTokenBank(nn.Module):
    """FIFO bank of past CLS tokens (the paper's V_n: dequeue S_{t-n}, enqueue S_t).

    Entries are detached copies: the bank never holds gradients (the teacher is frozen anyway).

    Args:
        size: Number of iterations (``unit="iterations"``) or tokens (``unit="tokens"``); 0 disables the bank.
        unit: "iterations" or "tokens".
    """

    def __init__(self, size: int = 24, unit: str = "iterations") -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"bank size must be >= 0, got {size}")
        if unit not in ("iterations", "tokens"):
            raise ValueError(f"unknown bank unit {unit!r} (expected 'iterations' or 'tokens')")
        self.size = size
        self.unit = unit
        self._entries: deque[torch.Tensor] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        """Empty the bank."""
        self._entries.clear()

    @torch.no_grad()
    def push(self, tokens: torch.Tensor) -> None:
        """Enqueue one iteration's CLS tokens (B, C), dequeuing the oldest past the size.

        Args:
            tokens: (B, C) tokens; stored detached.
        """
        if self.size == 0:
            return
        rows = tokens.detach().clone()
        if self.unit == "iterations":
            self._entries.append(rows)
            while len(self._entries) > self.size:
                self._entries.popleft()
        else:
            for row in rows:
                self._entries.append(row[None])
            while len(self._entries) > self.size:
                self._entries.popleft()

    def tokens(self, device: torch.device | None = None) -> torch.Tensor | None:
        """All stored tokens, oldest first, as (M, C); None when empty.

        Args:
            device: Where to return them.
        """
        if not self._entries:
            return None
        if device is not None:
            return torch.cat([e.to(device) for e in self._entries], 0)
        return torch.cat(list(self._entries), 0)

    def get_extra_state(self) -> dict[str, Any]:
        # The bank is part of the training state: without it a resumed run draws different negatives for the next
        # `size` iterations than an uninterrupted one, and exact resume breaks.
        return {"entries": [e.cpu() for e in self._entries]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._entries = deque(state.get("entries", []))

    def entries(self) -> list[torch.Tensor]:
        """The stored entries, oldest first (one per iteration, or one row per token)."""
        return list(self._entries)


class GlobalLearningModule(nn.Module):
    """L_global: pooling + InfoNCE against the batch's other CLS tokens and the bank.

    Args:
        cfg: GLM options.
    """

    def __init__(self, cfg: GLMConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or GLMConfig()
        self.bank = CLSTokenBank(self.cfg.bank_size, self.cfg.bank_unit)

    def forward(self, features: torch.Tensor, cls: torch.Tensor, *, update_bank: bool | None = None) -> torch.Tensor:
        """Compute L_global and (in training) enqueue this iteration's CLS tokens.

        Args:
            features: (B, C, h, w) student dense features R.
            cls: (B, C) teacher CLS tokens S.
            update_bank: Push the tokens after computing the loss; default ``self.training``.

        Returns:
            Scalar loss.
        """
        cfg = self.cfg
        pred = pool_features(
            features, cls, cfg.pooling, normalize_query=cfg.normalize_query, normalize_keys=cfg.normalize_keys
        )
        target = F.normalize(cls.detach().float(), dim=-1)
        if cfg.gather_distributed:
            everyone, offset = gather_no_grad(target)
        else:
            everyone, offset = target, 0
        keys = everyone
        bank = self.bank.tokens(device=target.device)
        if bank is not None:
            keys = torch.cat([keys, bank.to(keys.dtype)], 0)
        positive = torch.arange(target.shape[0], device=target.device) + offset
        loss = info_nce(pred.float(), keys, positive, cfg.temperature)
        if update_bank if update_bank is not None else self.training:
            self.bank.push(everyone)
        return loss
