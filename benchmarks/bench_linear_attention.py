"""linear_attention, Triton vs reference (SED's einsum LinearAttention) at SED's class-attention shapes.

Eval (pool 1, batch 1): N = h*w sequences of length T, 4 heads of C/4: decoder1 (24*24, T, 4, 32), decoder2
(48*48, T, 4, 16), decoder3 (96*96, T, 4, 8), T = 150 or 847. CPU runs time the reference only, at reduced shapes.
"""

from __future__ import annotations

import pytest
import torch

from ovkernels import linear_attention

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
if HAS_CUDA:
    SHAPES = [(s * s, t, 4, c // 4) for t in (150, 847) for c, s in ((128, 24), (64, 48), (32, 96))]
    DTYPES = [torch.float32, torch.float16, torch.bfloat16]
else:
    SHAPES = [(12 * 12, 150, 4, 32), (24 * 24, 150, 4, 8), (8 * 8, 847, 4, 32)]
    DTYPES = [torch.float32]


@pytest.mark.parametrize("mode", ["forward", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("provider", ["triton", "reference"])
def test_bench_linear_attention(measure, provider, shape, dtype, mode):
    if provider == "triton" and not HAS_CUDA:
        pytest.skip("the triton provider is benchmarked on CUDA only")
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    q, k, v = (
        torch.randn(shape, device=DEVICE, dtype=dtype, generator=gen).requires_grad_(mode == "full") for _ in range(3)
    )
    dout = torch.randn_like(q)
    backend = "triton" if provider == "triton" else "reference"

    def forward():
        with torch.no_grad():
            return linear_attention(q, k, v, backend=backend)

    def full():
        out = linear_attention(q, k, v, backend=backend)
        return torch.autograd.grad(out, (q, k, v), dout)

    measure(
        forward if mode == "forward" else full,
        kernel="linear_attention",
        provider=provider,
        mode=mode,
        shape=shape,
        dtype=dtype,
    )
