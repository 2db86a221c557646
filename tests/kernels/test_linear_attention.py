"""linear_attention (Triton) against reference_linear_attention (SED einsum form): forward and q/k/v gradients."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from ovk_testing import DEVICE, DTYPE_TOLS, assert_verbose_allclose, randn, requires_triton

from ovkernels import linear_attention, reference_linear_attention


def _quadratic(q, k, v, eps):
    """The definition, with the explicit L x L kernel matrix: an independent oracle for the reference."""
    a = torch.einsum("nlhd,nshd->nhls", F.elu(q) + 1, F.elu(k) + 1)
    return torch.einsum("nhls,nshd->nlhd", a, v) / (a.sum(-1).transpose(1, 2)[..., None] + eps)


def _check(shape, dtype, atol, rtol, seed, eps=1e-6, scale=1.0):
    q, k, v = (randn(shape, dtype, seed + i, scale) for i in range(3))
    dout = randn(shape, dtype, seed + 3)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out = linear_attention(*leaves, eps=eps, backend="triton")
    grads = torch.autograd.grad(out, leaves, dout)

    ref_leaves = [t.detach().float().requires_grad_() for t in leaves]
    out_ref = reference_linear_attention(*ref_leaves, eps=eps)
    ref_grads = torch.autograd.grad(out_ref, ref_leaves, dout.float())
    assert out.dtype == dtype and out.shape == shape
    assert_verbose_allclose(out, out_ref.to(dtype), atol, rtol, "out")
    for name, g, g_ref in zip(("dq", "dk", "dv"), grads, ref_grads, strict=True):
        assert g.dtype == dtype
        # Gradients reduce over the sequence: a few more rounding steps than the forward.
        assert_verbose_allclose(g, g_ref.to(dtype), 4 * atol, 4 * rtol, name)


@requires_triton
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@settings(max_examples=10)
@given(
    n=st.integers(1, 3),
    seq=st.sampled_from([1, 2, 3, 7, 16, 17, 31, 64, 65]),  # T = 1, primes, powers of two and one past
    heads=st.sampled_from([1, 2, 3, 4]),
    d=st.sampled_from([1, 3, 4, 8, 12, 16, 32]),  # SED heads are 32/16/8; >= 16 takes the tl.dot path
    eps=st.sampled_from([1e-6, 1e-3, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_matches_reference(dtype, atol, rtol, n, seq, heads, d, eps, seed):
    _check((n, seq, heads, d), dtype, atol, rtol, seed, eps=eps)


@requires_triton
@pytest.mark.parametrize("d", [8, 16, 32])
def test_sed_head_widths(d):
    # SED: 4 heads of C/4 over T classes; larger activations push phi into its linear branch.
    _check((2, 150, 4, d), torch.float32, 1e-5, 1e-5, seed=d, scale=3.0)


@requires_triton
def test_non_contiguous_inputs():
    # SED builds q, k, v by splitting one (N, T, C) projection: strided views must work.
    qkv = randn((2, 9, 3 * 16), torch.float32, 0)
    q, k, v = (t.reshape(2, 9, 4, 4) for t in qkv.split(16, dim=-1))
    assert not q.is_contiguous()
    out = linear_attention(q, k, v, backend="triton")
    assert_verbose_allclose(out, reference_linear_attention(q, k, v), 1e-5, 1e-5, "out")


@settings(max_examples=20)
@given(
    n=st.integers(1, 3),
    seq=st.integers(1, 20),
    heads=st.integers(1, 4),
    d=st.integers(1, 9),
    eps=st.sampled_from([1e-6, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_reference_matches_definition(n, seq, heads, d, eps, seed):
    q, k, v = (randn((n, seq, heads, d), torch.float64, seed + i).cpu() for i in range(3))
    torch.testing.assert_close(reference_linear_attention(q, k, v, eps), _quadratic(q, k, v, eps))


def test_cpu_default_is_reference(monkeypatch):
    q, k, v = (torch.randn(2, 5, 2, 4) for _ in range(3))
    torch.testing.assert_close(linear_attention(q, k, v, backend="reference"), reference_linear_attention(q, k, v))
    # Without backend= or an OVKERNELS_* override, CPU tensors never reach the Triton Function (even with the
    # interpreter on, as in these tests).
    for name in ("OVKERNELS_FORCE_TRITON", "OVKERNELS_FORCE_REFERENCE"):
        monkeypatch.delenv(name, raising=False)

    def fail(*args):
        raise AssertionError("the Triton path ran for CPU tensors")

    monkeypatch.setattr(importlib.import_module("ovkernels.linear_attention").LinearAttentionFunction, "apply", fail)
    torch.testing.assert_close(linear_attention(q, k, v), reference_linear_attention(q, k, v))


@pytest.mark.parametrize(
    "shapes",
    [((2, 5, 2, 4), (2, 5, 2, 4), (2, 6, 2, 4)), ((2, 5, 8), (2, 5, 8), (2, 5, 8))],
)
def test_bad_shapes(shapes):
    with pytest.raises(ValueError):
        linear_attention(*(torch.zeros(s) for s in shapes))


def test_bad_eps_and_dtype():
    q = torch.zeros(1, 2, 1, 4)
    with pytest.raises(ValueError):
        linear_attention(q, q, q, eps=-1.0)
    with pytest.raises(ValueError):
        linear_attention(q, q, q.double())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@pytest.mark.parametrize(
    "shape",
    [(2 * 24 * 24, 150, 4, 32), (48 * 48, 150, 4, 16), (96 * 96, 847, 4, 8), (131, 847, 4, 32), (97, 61, 3, 5)],
)
def test_large_shapes_gpu(dtype, atol, rtol, shape):
    assert DEVICE.type == "cuda"
    _check(shape, dtype, atol, rtol, seed=5)
