"""Softmax attention with a choice of backend: torch SDPA by default, xformers on request, an explicit reference.

xformers is optional and never in the lock (its wheels are built for one torch/CUDA pair and have no CPU kernels),
so ``"auto"`` never picks it: ``backend="xformers"`` (or ``OVCORE_ATTENTION=xformers``) routes CUDA tensors to
``xformers.ops.memory_efficient_attention`` where it imports, and raises where it cannot run instead of silently
falling back.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

__all__ = ["BACKENDS", "ENV_BACKEND", "attention", "reference_attention", "xformers_available"]

BACKENDS = ("auto", "sdpa", "xformers", "math")
ENV_BACKEND = "OVCORE_ATTENTION"


def xformers_available() -> bool:
    """True when ``xformers.ops`` imports (it needs a build that matches the installed torch)."""
    try:
        import xformers.ops  # noqa: F401
    except Exception:  # noqa: BLE001 - a mismatched build raises more than ImportError
        return False
    return True


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Explicit ``softmax(q k^T * scale) v`` in the input dtype: the ground truth of the other backends."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    weights = (q @ k.transpose(-2, -1) * scale).softmax(-1)
    return weights @ v


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float | None = None, backend: str | None = None
) -> torch.Tensor:
    """Multi-head softmax attention without mask or dropout.

    Args:
        q: (B, H, Lq, D) queries.
        k: (B, H, Lk, D) keys.
        v: (B, H, Lk, Dv) values.
        scale: logit scale, ``1 / sqrt(D)`` by default.
        backend: ``None``/``"auto"`` (``$OVCORE_ATTENTION`` or SDPA), ``"sdpa"``, ``"xformers"`` or ``"math"``.

    Returns:
        (B, H, Lq, Dv).

    Raises:
        ValueError: unknown backend or mismatched shapes.
        RuntimeError: xformers requested but not importable, or on CPU tensors (it has no CPU kernels).
    """
    choice = (backend or os.environ.get(ENV_BACKEND, "")).strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS} (argument or ${ENV_BACKEND}), got {choice!r}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be (B, H, L, D), got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape[:2] != q.shape[:2] or v.shape[:3] != k.shape[:3] or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"incompatible q, k, v shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if choice == "math":
        return reference_attention(q, k, v, scale)
    if choice == "xformers":
        if not xformers_available():
            raise RuntimeError("attention backend 'xformers' requested but xformers does not import; use 'sdpa'")
        if not q.is_cuda:
            raise RuntimeError("xformers has no CPU kernels; use the 'sdpa' attention backend on CPU")
        import xformers.ops as xops

        # xformers takes (B, L, H, D).
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=scale)
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)
