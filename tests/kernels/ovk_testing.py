"""Helpers shared by the ovkernels tests (uniquely named: tests/ folders have no __init__.py)."""

from __future__ import annotations

import pytest
import torch

from ovkernels.utils import HAS_TRITON, triton_interpret

HAS_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
# Compiled kernels on a GPU, the Triton interpreter (TRITON_INTERPRET=1, set by the root conftest) on CPU.
TRITON_OK = HAS_TRITON and (HAS_CUDA or triton_interpret())
requires_triton = pytest.mark.skipif(not TRITON_OK, reason="needs triton with CUDA or TRITON_INTERPRET=1")

# (dtype, atol, rtol) against the fp32 reference on the same (rounded) inputs. The interpreter computes bf16
# wrongly, so bf16 runs on a GPU only.
DTYPE_TOLS = [
    pytest.param(torch.float32, 1e-5, 1e-5, id="fp32"),
    pytest.param(torch.float16, 1e-2, 1e-2, id="fp16"),
    pytest.param(torch.bfloat16, 5e-2, 5e-2, id="bf16", marks=pytest.mark.gpu),
]


def randn(shape: tuple[int, ...], dtype: torch.dtype, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Seeded normal tensor on DEVICE, rounded to ``dtype`` (generated in fp32 so every dtype sees the same data)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * scale).to(device=DEVICE, dtype=dtype)


def assert_verbose_allclose(
    actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, name: str = "", max_print: int = 5
) -> None:
    """``allclose`` in fp32 that reports the mismatch count, the first indices and NaN/inf disagreements."""
    a = actual.detach().float().cpu()
    e = expected.detach().float().cpu()
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}")
    nan_bad = a.isnan() != e.isnan()
    inf_bad = (a.isinf() | e.isinf()) & (a != e)
    finite = ~(a.isnan() | e.isnan() | a.isinf() | e.isinf())
    close = (a - e).abs() <= atol + rtol * e.abs()
    bad = nan_bad | inf_bad | (finite & ~close)
    if bad.any():
        idx = bad.nonzero()[:max_print].tolist()
        pairs = [(i, a[tuple(i)].item(), e[tuple(i)].item()) for i in idx]
        worst = ((a - e).abs() * finite).max().item()
        raise AssertionError(
            f"{name}: {int(bad.sum())}/{bad.numel()} mismatches (atol={atol}, rtol={rtol}, max abs diff {worst:.3g}, "
            f"nan mismatches {int(nan_bad.sum())}, inf mismatches {int(inf_bad.sum())}); first: {pairs}"
        )
