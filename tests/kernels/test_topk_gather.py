"""Per-image category early rejection: top-k mask, compaction and gather (Triton) against the references."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from official_sed import valid_idx
from ovk_testing import DEVICE, DTYPE_TOLS, randn, requires_triton

from ovkernels import (
    compact_categories,
    gather_categories,
    reference_compact_categories,
    reference_gather_categories,
    reference_topk_category_mask,
    topk_category_mask,
    topk_gather,
)

CLASS_COUNTS = st.sampled_from([1, 2, 3, 5, 8, 13, 16, 31, 33])
SIDES = st.sampled_from([1, 2, 3, 5, 8])


def _stable_sort_oracle(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The tie rule spelled out: a stable descending sort puts equal logits in class order (lowest index first)."""
    bsz, t = logits.shape[:2]
    order = torch.sort(logits.float().flatten(2), dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros(bsz, t, dtype=torch.bool, device=logits.device)
    return mask.scatter_(1, order.flatten(1), True)


def _logits(shape, seed, ties, dtype=torch.float32):
    if ties:  # a handful of distinct values: most per-pixel rankings have ties at the k-th place
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, 3, shape, generator=gen).to(device=DEVICE, dtype=dtype)
    return randn(shape, dtype, seed)


@requires_triton
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@settings(max_examples=10)
@given(
    bsz=st.integers(1, 3),
    t=CLASS_COUNTS,
    h=SIDES,
    w=SIDES,
    k=st.integers(1, 10),
    ties=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_mask_matches_reference(dtype, atol, rtol, bsz, t, h, w, k, ties, seed):
    logits = _logits((bsz, t, h, w), seed, ties, dtype)
    mask = topk_category_mask(logits, k, backend="triton")
    expected = reference_topk_category_mask(logits, k)
    assert mask.dtype == torch.bool and mask.shape == (bsz, t)
    assert torch.equal(mask, expected)
    if k >= t:
        assert mask.all()


@requires_triton
@settings(max_examples=8)
@given(
    bsz=st.integers(1, 2),
    t=CLASS_COUNTS,
    hw=st.sampled_from([1, 3, 17]),
    k=st.integers(1, 6),
    ties=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_streamed_path_matches_reference(bsz, t, hw, k, ties, seed):
    # The chunked path serves T > 2048 on a GPU; small thresholds exercise it here, several chunks per column.
    logits = _logits((bsz, t, hw, 1), seed, ties)
    mask = topk_gather._topk_mask_launch(logits, k, resident_max=2, chunk=4)
    assert torch.equal(mask, reference_topk_category_mask(logits, k))


@settings(max_examples=40)
@given(
    bsz=st.integers(1, 3),
    t=CLASS_COUNTS,
    h=SIDES,
    w=SIDES,
    k=st.integers(1, 40),
    ties=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_reference_tie_rule(bsz, t, h, w, k, ties, seed):
    logits = _logits((bsz, t, h, w), seed, ties).cpu()
    assert torch.equal(reference_topk_category_mask(logits, k), _stable_sort_oracle(logits, min(k, t)))


@settings(max_examples=20)
@given(t=CLASS_COUNTS, h=SIDES, w=SIDES, k=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_reference_matches_official_for_one_image(t, h, w, k, seed):
    logits = randn((1, t, h, w), torch.float32, seed).cpu()  # distinct values: argsort order is unique
    assert torch.equal(reference_topk_category_mask(logits, k)[0], valid_idx(logits, k))


@requires_triton
@settings(max_examples=6)
@given(bsz=st.integers(2, 3), t=CLASS_COUNTS, k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_mask_is_per_image(bsz, t, k, seed):
    # Unlike SED's batch union, each image keeps exactly the classes it would keep alone.
    logits = _logits((bsz, t, 3, 2), seed, ties=False)
    mask = topk_category_mask(logits, k, backend="triton")
    for b in range(bsz):
        assert torch.equal(mask[b], topk_category_mask(logits[b : b + 1], k, backend="triton")[0])


@requires_triton
def test_mask_extreme_values():
    logits = torch.tensor([[-float("inf"), 3.0, float("inf"), -float("inf"), 3.0]], device=DEVICE).view(1, 5, 1, 1)
    for k in range(1, 5):
        assert torch.equal(topk_category_mask(logits, k, backend="triton"), reference_topk_category_mask(logits, k)), k


def test_reference_never_keeps_nan():
    # NaN ranks below every number, -inf included: it is never kept and takes none of a pixel's k places.
    logits = torch.tensor([float("nan"), 1.0, 3.0, 2.0, -float("inf")]).view(1, 5, 1, 1)
    expected = {1: [2], 2: [2, 3], 3: [1, 2, 3], 4: [1, 2, 3, 4]}
    for k, kept in expected.items():
        assert reference_topk_category_mask(logits, k)[0].nonzero()[:, 0].tolist() == kept, k


@requires_triton
@settings(max_examples=8)
@given(
    bsz=st.integers(1, 2),
    t=CLASS_COUNTS,
    hw=st.sampled_from([1, 3, 17]),
    k=st.integers(1, 6),
    ties=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_mask_with_nan_matches_reference(bsz, t, hw, k, ties, seed):
    logits = _logits((bsz, t, hw, 1), seed, ties)
    gen = torch.Generator().manual_seed(seed + 1)
    logits[(torch.rand(logits.shape, generator=gen) < 0.3).to(DEVICE)] = float("nan")
    expected = reference_topk_category_mask(logits, k)
    assert torch.equal(topk_category_mask(logits, k, backend="triton"), expected)
    if k < t:  # k >= T keeps every class without a launch
        assert torch.equal(topk_gather._topk_mask_launch(logits, k, resident_max=2, chunk=4), expected)
        assert not (expected & logits.isnan().flatten(2).all(2)).any()  # a class NaN at every pixel is never kept


@requires_triton
@settings(max_examples=10)
@given(bsz=st.integers(1, 4), t=CLASS_COUNTS, p=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_compact_matches_reference(bsz, t, p, seed):
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(bsz, t, generator=gen) < p).to(DEVICE)
    indices, offsets = compact_categories(mask, backend="triton")
    ref_indices, ref_offsets = reference_compact_categories(mask)
    assert indices.dtype == offsets.dtype == torch.int64
    assert torch.equal(indices, ref_indices) and torch.equal(offsets, ref_offsets)
    for b in range(bsz):  # CSR meaning, spelled out
        assert torch.equal(indices[offsets[b] : offsets[b + 1]], mask[b].nonzero()[:, 0])


@requires_triton
@pytest.mark.parametrize("dtype, atol, rtol", DTYPE_TOLS)
@settings(max_examples=8)
@given(
    bsz=st.integers(1, 3),
    t=CLASS_COUNTS,
    c=st.integers(1, 3),
    h=SIDES,
    w=SIDES,
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_gather_matches_reference(dtype, atol, rtol, bsz, t, c, h, w, p, seed):
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(bsz, t, generator=gen) < p).to(DEVICE)
    indices, offsets = reference_compact_categories(mask)
    x = randn((bsz, t, c, h, w), dtype, seed).requires_grad_()
    y = gather_categories(x, indices, offsets, backend="triton")
    y_ref = reference_gather_categories(x, indices, offsets)
    assert y.shape == (indices.numel(), c, h, w)
    assert torch.equal(y, y_ref)  # a copy: bit exact
    dy = randn(tuple(y.shape), dtype, seed + 1)
    (dx,) = torch.autograd.grad(y, x, dy)
    (dx_ref,) = torch.autograd.grad(y_ref, x, dy)
    assert dx.dtype == dtype and torch.equal(dx, dx_ref)  # each row receives exactly one gradient


@requires_triton
def test_gather_backward_sums_repeated_rows():
    x = randn((2, 4, 3), torch.float32, 0).requires_grad_()
    indices = torch.tensor([1, 1, 3, 0, 0, 0], device=DEVICE)
    offsets = torch.tensor([0, 3, 6], device=DEVICE)
    dy = randn((6, 3), torch.float32, 1)
    (dx,) = torch.autograd.grad(gather_categories(x, indices, offsets, backend="triton"), x, dy)
    (dx_ref,) = torch.autograd.grad(reference_gather_categories(x, indices, offsets), x, dy)
    torch.testing.assert_close(dx, dx_ref)


@requires_triton
@pytest.mark.parametrize("k", [1, 2, 8])
def test_pipeline_end_to_end(k):
    # SED stage 1 on a tiny batch: logits -> per-image kept classes -> packed features, ties included.
    logits = _logits((2, 13, 4, 3), seed=k, ties=True)
    feats = randn((2, 13, 5, 4, 3), torch.float32, 3)
    mask = topk_category_mask(logits, k, backend="triton")
    indices, offsets = compact_categories(mask, backend="triton")
    packed = gather_categories(feats, indices, offsets, backend="triton")
    expected = torch.cat([feats[b][_stable_sort_oracle(logits[b : b + 1], k)[0]] for b in range(2)])
    assert torch.equal(packed, expected)


def test_empty_and_trivial_cases():
    logits = torch.randn(2, 1, 3, 3)
    assert topk_category_mask(logits, 1).all()  # T = 1
    assert topk_category_mask(torch.randn(2, 5, 3, 3), 99).all()  # k >= T
    assert not topk_category_mask(torch.randn(2, 5, 0, 3), 2).any()  # no pixels, nothing kept
    indices, offsets = compact_categories(torch.zeros(3, 4, dtype=torch.bool))
    assert indices.numel() == 0 and offsets.tolist() == [0, 0, 0, 0]
    assert gather_categories(torch.randn(3, 4, 2), indices, offsets).shape == (0, 2)


def test_bad_arguments():
    with pytest.raises(ValueError):
        topk_category_mask(torch.randn(2, 5, 3), 1)
    with pytest.raises(ValueError):
        topk_category_mask(torch.randn(2, 5, 3, 3), 0)
    with pytest.raises(ValueError):
        topk_category_mask(torch.randint(0, 3, (2, 5, 3, 3)), 1)
    with pytest.raises(ValueError):
        compact_categories(torch.ones(2, 5))
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError):
        gather_categories(x, torch.tensor([1, 2]), torch.tensor([0, 1]))  # offsets must be (B + 1,)
    with pytest.raises(ValueError):
        gather_categories(x, torch.tensor([1, 2], dtype=torch.int32), torch.tensor([0, 1, 2]))


@pytest.mark.gpu
@pytest.mark.parametrize("t, side, k", [(150, 24, 8), (847, 24, 1), (847, 48, 8), (171, 96, 8), (847, 97, 3)])
def test_large_shapes_gpu(t, side, k):
    assert DEVICE.type == "cuda"
    for ties in (False, True):
        logits = _logits((2, t, side, side), seed=t + k, ties=ties, dtype=torch.float16)
        mask = topk_category_mask(logits, k)
        assert torch.equal(mask, reference_topk_category_mask(logits, k))
        indices, offsets = compact_categories(mask)
        ref = reference_compact_categories(mask)
        assert torch.equal(indices, ref[0]) and torch.equal(offsets, ref[1])
        feats = randn((2, t, 16, 24, 24), torch.float16, 0)
        assert torch.equal(gather_categories(feats, indices, offsets), reference_gather_categories(feats, *ref))
