"""Cosine cost map (SED Eq. 1): against a direct loop, chunked vs unchunked, gradients, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ovcore.costmap import cost_map, mean_cost_map


def _loop_cost_map(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Eq. 1 written out one entry at a time, in float64."""
    b, d, h, w = image.shape
    if text.ndim == 3:
        text = text.unsqueeze(0).expand(b, -1, -1, -1)
    _, t, p, _ = text.shape
    out = torch.empty(b, p, t, h, w, dtype=torch.float64)
    for bi in range(b):
        for pi in range(p):
            for ti in range(t):
                e = text[bi, ti, pi].double()
                e_norm = math.sqrt(float((e * e).sum()))
                for i in range(h):
                    for j in range(w):
                        f = image[bi, :, i, j].double()
                        f_norm = math.sqrt(float((f * f).sum()))
                        out[bi, pi, ti, i, j] = float((f * e).sum()) / (f_norm * e_norm)
    return out


shapes = st.tuples(
    st.integers(1, 2),  # B
    st.integers(1, 5),  # D
    st.integers(1, 3),  # H
    st.integers(1, 3),  # W
    st.integers(1, 5),  # T
    st.integers(1, 3),  # P
)


@given(shape=shapes, batched_text=st.booleans(), chunk=st.one_of(st.none(), st.integers(1, 6)), seed=st.integers(0, 99))
def test_cost_map_matches_direct_loop(shape, batched_text, chunk, seed):
    b, d, h, w, t, p = shape
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(b, d, h, w, generator=g)
    text = torch.randn(*((b,) if batched_text else ()), t, p, d, generator=g)
    expected = _loop_cost_map(image, text)

    got = cost_map(image, text, chunk_size=chunk)
    assert got.shape == (b, p, t, h, w)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)

    mean = mean_cost_map(image, text, chunk_size=chunk)
    assert mean.shape == (b, t, h, w)
    torch.testing.assert_close(mean.double(), expected.mean(1), rtol=1e-5, atol=1e-5)


@given(t=st.integers(1, 40), chunk=st.integers(1, 45), batched_text=st.booleans())
def test_chunked_equals_unchunked(t, chunk, batched_text):
    image = torch.randn(2, 8, 4, 3)
    text = torch.randn(*((2,) if batched_text else ()), t, 3, 8)
    torch.testing.assert_close(cost_map(image, text, chunk_size=chunk), cost_map(image, text), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        mean_cost_map(image, text, chunk_size=chunk), mean_cost_map(image, text), rtol=0, atol=1e-6
    )


def test_scale_invariant_and_bounded():
    image = torch.randn(1, 16, 5, 5)
    text = torch.randn(7, 4, 16)
    c = cost_map(image, text)
    torch.testing.assert_close(cost_map(3.0 * image, 0.5 * text), c)
    assert c.abs().max() <= 1.0 + 1e-6
    # a location equal to a text embedding has cosine 1 with it (no temperature applied)
    image[0, :, 2, 3] = text[4, 1] * 7.0
    assert cost_map(image, text)[0, 1, 4, 2, 3].item() == pytest.approx(1.0, abs=1e-6)


def test_gradients_match_between_chunked_and_unchunked():
    image = torch.randn(2, 6, 3, 3, requires_grad=True)
    text = torch.randn(5, 2, 6, requires_grad=True)
    weights = torch.randn(2, 2, 5, 3, 3)
    grads = []
    for chunk in (None, 2):
        (cost_map(image, text, chunk_size=chunk) * weights).sum().backward()
        (mean_cost_map(image, text, chunk_size=chunk) * weights[:, 0]).sum().backward()
        grads.append((image.grad.clone(), text.grad.clone()))
        image.grad = text.grad = None
    torch.testing.assert_close(grads[0], grads[1])


def test_large_vocabulary_in_chunks():
    # 847 classes at 24x24 (ADE-847 at SED's 1/32 resolution) with a small D; one chunk at a time
    image = torch.randn(1, 8, 24, 24)
    text = torch.randn(847, 2, 8)
    full = mean_cost_map(image, text)
    chunked = mean_cost_map(image, text, chunk_size=128)
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-6)
    assert cost_map(image, text, chunk_size=100).shape == (1, 2, 847, 24, 24)


def test_dtype_promotion():
    image = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    text = torch.randn(3, 2, 4)
    assert cost_map(image, text).dtype == torch.float64


@pytest.mark.parametrize(
    ("image_shape", "text_shape", "chunk", "match"),
    [
        ((1, 4, 2), (3, 2, 4), None, "image_emb"),
        ((1, 4, 2, 2), (3, 4), None, "text_emb"),
        ((1, 4, 2, 2), (3, 2, 5), None, "embedding sizes"),
        ((2, 4, 2, 2), (3, 3, 2, 4), None, "batch sizes"),
        ((1, 4, 2, 2), (0, 2, 4), None, "no classes"),
        ((1, 4, 2, 2), (3, 2, 4), 0, "chunk_size"),
    ],
)
def test_bad_shapes_raise(image_shape, text_shape, chunk, match):
    with pytest.raises(ValueError, match=match):
        cost_map(torch.randn(image_shape), torch.randn(text_shape), chunk_size=chunk)
    with pytest.raises(ValueError, match=match):
        mean_cost_map(torch.randn(image_shape), torch.randn(text_shape), chunk_size=chunk)
