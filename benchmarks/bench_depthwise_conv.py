"""depthwise_conv2d, Triton vs reference (F.conv2d -> cuDNN on GPU) at SED's FAM shapes, 9x9, bias.

SED (ConvNeXt-B, 768 input, batch 1, no CER) runs the ConvNeXt block on (T, C, h, w) maps: decoder1 (T, 128, 24, 24),
decoder2 (T, 64, 48, 48), decoder3 (T, 32, 96, 96), T = 150 (ADE-150) or 847 (ADE-847). CPU runs time the
reference only, at reduced shapes.
"""

from __future__ import annotations

import pytest
import torch

from ovkernels import depthwise_conv2d

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
if HAS_CUDA:
    SHAPES = [(t, c, s, s) for t in (150, 847) for c, s in ((128, 24), (64, 48), (32, 96))]
    DTYPES = [torch.float32, torch.float16, torch.bfloat16]
else:
    SHAPES = [(16, 32, 24, 24), (4, 16, 48, 48)]
    DTYPES = [torch.float32]


@pytest.mark.parametrize("mode", ["forward", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("provider", ["triton", "reference"])
def test_bench_depthwise_conv(measure, provider, shape, dtype, mode):
    if provider == "triton" and not HAS_CUDA:
        pytest.skip("the triton provider is benchmarked on CUDA only")
    n, c, h, w = shape
    k = 9
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(shape, device=DEVICE, dtype=dtype, generator=gen)
    weight = (torch.randn((c, 1, k, k), device=DEVICE, dtype=dtype, generator=gen) / k).requires_grad_()
    bias = torch.randn((c,), device=DEVICE, dtype=dtype, generator=gen).requires_grad_()
    dy = torch.randn_like(x)
    x.requires_grad_(mode == "full")
    backend = "triton" if provider == "triton" else "reference"

    def forward():
        with torch.no_grad():
            return depthwise_conv2d(x, weight, bias, backend=backend)

    def full():
        y = depthwise_conv2d(x, weight, bias, backend=backend)
        return torch.autograd.grad(y, (x, weight, bias), dy)

    measure(
        forward if mode == "forward" else full,
        kernel="depthwise_conv",
        provider=provider,
        mode=mode,
        shape=shape,
        dtype=dtype,
        kernel_size=k,
    )
