"""Category early rejection: Triton (mask + compact + gather) vs the reference and SED's official approach.

One CER stage: aux logits (B, T, s, s) and per-class features (B, T, C, s, s) -> packed (sum_b T_b, C, s, s).
Stages as in SED at 768 input: s = 24 (C 128), 48 (C 64), 96 (C 32); T = 150 or 847; k = 1 (config default) or
8 (README's fast command). "official" is SED's valid_idx: full argsort + bincount + boolean indexing, run per image
(the original unions over the batch and fails for B > 1). CPU runs time reference and official only, at one
reduced stage.
"""

from __future__ import annotations

import pytest
import torch
from official_sed import valid_idx  # tests/sed, on sys.path via the root config

from ovkernels import compact_categories, gather_categories, topk_category_mask

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
if HAS_CUDA:
    STAGES = [(b, t, c, s) for b in (1, 2) for t in (150, 847) for c, s in ((128, 24), (64, 48), (32, 96))]
else:
    STAGES = [(1, 150, 16, 24), (1, 847, 16, 24), (2, 847, 16, 24)]


def official_cer(logits: torch.Tensor, feats: torch.Tensor, k: int) -> torch.Tensor:
    """SED's valid_idx + boolean indexing, image by image."""
    kept = []
    for b in range(logits.shape[0]):
        kept.append(feats[b][valid_idx(logits[b : b + 1], k)])
    return torch.cat(kept)


def ovk_cer(logits: torch.Tensor, feats: torch.Tensor, k: int, backend: str) -> torch.Tensor:
    mask = topk_category_mask(logits, k, backend=backend)
    indices, offsets = compact_categories(mask, backend=backend)
    return gather_categories(feats, indices, offsets, backend=backend)


@pytest.mark.parametrize("k", [1, 8])
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: "B{}_T{}_C{}_{}px".format(*s))
@pytest.mark.parametrize("provider", ["triton", "reference", "official"])
def test_bench_topk_gather(measure, provider, stage, k):
    if provider == "triton" and not HAS_CUDA:
        pytest.skip("the triton provider is benchmarked on CUDA only")
    b, t, c, s = stage
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    logits = torch.randn((b, t, s, s), device=DEVICE, generator=gen)
    feats = torch.randn((b, t, c, s, s), device=DEVICE, generator=gen)
    if provider == "official":
        fn = lambda: official_cer(logits, feats, k)  # noqa: E731
    else:
        fn = lambda: ovk_cer(logits, feats, k, provider)  # noqa: E731
    measure(
        fn,
        kernel="topk_gather",
        provider=provider,
        mode="forward",
        shape=(b, t, c, s, s),
        dtype=torch.float32,
        k=k,
        kept=int(fn().shape[0]),
    )
