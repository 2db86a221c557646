"""Helpers shared by the SED tests (all CPU, random weights)."""

from __future__ import annotations

import torch
from torch import nn

import sed


def perturb_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every norm layer / layer scale non-trivial affine parameters, so equivalence tests exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or name.endswith("gamma"):
                base = 1.0 if name.endswith(("weight", "gamma")) else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=gen))
    return module


def make_aggregator(variant: str = "b", **kwargs) -> sed.Aggregator:
    """The official B / L decoder with random weights."""
    guidance = {"b": (512, 256, 128), "l": (768, 384, 192)}[variant]
    return perturb_norms(sed.Aggregator(guidance_dims=guidance, **kwargs))


def decoder_inputs(batch: int, num_classes: int, h: int, guidance=(512, 256, 128), seed: int = 0):
    """A cosine-like cost map (B, 80, T, h, w) and skip features [res4, res3, res2] for an h x h cost map."""
    gen = torch.Generator().manual_seed(seed)
    cost = (0.3 * torch.randn(batch, 80, num_classes, h, h, generator=gen)).clamp(-1, 1)
    feats = [torch.randn(batch, c, h * 2 ** (i + 1), h * 2 ** (i + 1), generator=gen) for i, c in enumerate(guidance)]
    return cost, feats
