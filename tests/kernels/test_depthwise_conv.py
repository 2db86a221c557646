"""depthwise_conv2d (Triton) against reference_depthwise_conv2d (F.conv2d): forward and every gradient."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from ovk_testing import DEVICE, DTYPE_TOLS, assert_verbose_allclose, randn, requires_triton

from ovkernels import depthwise_conv2d, reference_depthwise_conv2d

SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 13, 16, 17])  # ones, primes, powers of two and one past them


def _check(n, c, h, w, k, with_bias, dtype, atol, rtol, seed, channels_last=False):
    x = randn((n, c, h, w), dtype, seed)
    weight = randn((c, 1, k, k), dtype, seed + 1, scale=1.0 / k)
    bias = randn((c,), dtype, seed + 2) if with_bias else None
    dy = randn((n, c, h, w), dtype, seed + 3)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    leaves = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if with_bias else ())]
    y = depthwise_conv2d(*leaves, backend="triton")
    grads = torch.autograd.grad(y, leaves, dy)

    # Ground truth in fp32 on the same rounded inputs, rounded once to the output dtype like the kernel.
    ref_leaves = [t.detach().float().requires_grad_() for t in leaves]
    y_ref = reference_depthwise_conv2d(*ref_leaves)
    ref_grads = torch.autograd.grad(y_ref, ref_leaves, dy.float())
    assert y.dtype == dtype and y.shape == (n, c, h, w)
    assert_verbose_allclose(y, y_ref.to(dtype), atol, rtol, "y")
    # Weight and bias gradients sum over N*H*W products: allow that many more fp32 rounding steps.
    scale = 1.0 if dtype != torch.float32 else 10.0
    for name, g, g_ref in zip(("dx", "dweight", "dbias")[: len(grads)], grads, ref_grads, strict=True):
        assert g.dtype == dtype
        tol_scale = 1.0 if name == "dx" else scale
        assert_verbose_allclose(g, g_ref.to(dtype), atol * tol_scale, rtol * tol_scale, name)


@requires_triton
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@settings(max_examples=6)  # interpreted: ~1 s per example on 2 cores
@given(
    n=st.integers(1, 3),
    c=st.sampled_from([1, 2, 3, 5]),
    h=SIZES,
    w=SIZES,
    k=st.sampled_from([1, 3, 5, 7, 9, 11, 13]),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_reference(dtype, atol, rtol, n, c, h, w, k, with_bias, seed):
    _check(n, c, h, w, k, with_bias, dtype, atol, rtol, seed)


@requires_triton
@pytest.mark.parametrize("shape", [(1, 2, 24, 24), (2, 1, 1, 1), (1, 3, 9, 4)])
def test_sed_kernel_size(shape):
    # SED: 9x9, padding 4, bias; includes a map smaller than the kernel and a single pixel.
    _check(*shape, k=9, with_bias=True, dtype=torch.float32, atol=1e-5, rtol=1e-5, seed=3)


@requires_triton
def test_non_contiguous_input():
    _check(2, 3, 6, 5, 3, True, torch.float32, 1e-5, 1e-5, seed=7, channels_last=True)


@requires_triton
def test_partial_requires_grad_and_no_grad():
    x = randn((2, 3, 7, 6), torch.float32, 0).requires_grad_()
    weight = randn((3, 1, 5, 5), torch.float32, 1)
    bias = randn((3,), torch.float32, 2)
    (dx,) = torch.autograd.grad(depthwise_conv2d(x, weight, bias, backend="triton").sum(), (x,))
    x_ref = x.detach().requires_grad_()
    (dx_ref,) = torch.autograd.grad(reference_depthwise_conv2d(x_ref, weight, bias).sum(), (x_ref,))
    assert_verbose_allclose(dx, dx_ref, 1e-5, 1e-5, "dx")
    # A trained weight next to a frozen bias: the weight gradient alone (the bias reduction is skipped).
    w_leaf = weight.clone().requires_grad_()
    (dw,) = torch.autograd.grad(depthwise_conv2d(x.detach(), w_leaf, bias, backend="triton").sum(), (w_leaf,))
    w_ref = weight.clone().requires_grad_()
    (dw_ref,) = torch.autograd.grad(reference_depthwise_conv2d(x.detach(), w_ref, bias).sum(), (w_ref,))
    assert_verbose_allclose(dw, dw_ref, 1e-4, 1e-4, "dweight")
    with torch.no_grad():
        y = depthwise_conv2d(x, weight, None, backend="triton")
    assert_verbose_allclose(y, reference_depthwise_conv2d(x.detach(), weight), 1e-5, 1e-5, "y")


def test_reference_identity_kernel():
    # A centred delta kernel is the identity, whatever k: pins the padding convention (k // 2, "same").
    x = torch.randn(2, 3, 5, 4)
    for k in (1, 3, 9, 13):
        weight = torch.zeros(3, 1, k, k)
        weight[:, :, k // 2, k // 2] = 1.0
        bias = torch.tensor([0.5, -1.0, 2.0])
        torch.testing.assert_close(depthwise_conv2d(x, weight, bias), x + bias.view(1, 3, 1, 1))


@pytest.mark.parametrize(
    "x_shape, w_shape, b_shape",
    [
        ((1, 3, 8, 8), (3, 1, 4, 4), None),  # even kernel
        ((1, 3, 8, 8), (3, 1, 15, 15), None),  # too large
        ((1, 3, 8, 8), (2, 1, 3, 3), None),  # channel mismatch
        ((1, 3, 8, 8), (3, 1, 3, 5), None),  # not square
        ((3, 8, 8), (3, 1, 3, 3), None),  # not 4-D
        ((1, 3, 8, 8), (3, 1, 3, 3), (2,)),  # bias mismatch
    ],
)
def test_bad_arguments(x_shape, w_shape, b_shape):
    bias = torch.zeros(b_shape) if b_shape else None
    with pytest.raises(ValueError):
        depthwise_conv2d(torch.zeros(x_shape), torch.zeros(w_shape), bias)


def test_bad_dtypes():
    with pytest.raises(ValueError):
        depthwise_conv2d(torch.zeros(1, 2, 4, 4, dtype=torch.int32), torch.zeros(2, 1, 3, 3, dtype=torch.int32))
    with pytest.raises(ValueError):
        depthwise_conv2d(torch.zeros(1, 2, 4, 4), torch.zeros(2, 1, 3, 3, dtype=torch.float64))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@pytest.mark.parametrize(
    "shape",
    [(150, 128, 24, 24), (150, 64, 48, 48), (40, 32, 96, 96), (7, 37, 41, 43)],  # SED decoders 1-3, primes
)
def test_large_shapes_gpu(dtype, atol, rtol, shape):
    assert DEVICE.type == "cuda"
    _check(*shape, k=9, with_bias=True, dtype=dtype, atol=atol, rtol=rtol, seed=11)
    _check(*shape[:2], 17, 19, k=13, with_bias=True, dtype=dtype, atol=atol, rtol=rtol, seed=12)
