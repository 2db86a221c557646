"""ovcore.attention: SDPA (default), the explicit reference, and the optional xformers backend."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ovcore.attention import attention, reference_attention, xformers_available


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("lq", "lk", "d", "dv"), [(1, 1, 1, 1), (1, 1024, 64, 64), (7, 13, 8, 5)])
def test_sdpa_matches_the_reference(dtype: torch.dtype, lq: int, lk: int, d: int, dv: int) -> None:
    g = torch.Generator().manual_seed(lq * 31 + lk)
    q, k = (torch.randn(2, 3, n, d, generator=g, dtype=dtype) for n in (lq, lk))
    v = torch.randn(2, 3, lk, dv, generator=g, dtype=dtype)
    for scale in (None, 0.3):
        out = attention(q, k, v, scale=scale)
        assert out.shape == (2, 3, lq, dv)
        torch.testing.assert_close(out, reference_attention(q, k, v, scale))
        torch.testing.assert_close(attention(q, k, v, scale=scale, backend="math"), reference_attention(q, k, v, scale))


def test_environment_variable_picks_the_backend(monkeypatch) -> None:
    q = torch.randn(1, 1, 2, 4)
    monkeypatch.setenv("OVCORE_ATTENTION", "math")
    torch.testing.assert_close(attention(q, q, q), reference_attention(q, q, q))
    monkeypatch.setenv("OVCORE_ATTENTION", "flash-please")
    with pytest.raises(ValueError, match="OVCORE_ATTENTION"):
        attention(q, q, q)


def test_reachable_as_a_lazy_ovcore_submodule() -> None:
    # A fresh interpreter: in this one the import above has already set the attribute on the package.
    code = "import ovcore; assert 'attention' in ovcore.__all__; print(ovcore.attention.attention.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "attention"


def test_bad_shapes_and_backends_are_named() -> None:
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="backend"):
        attention(q, q, q, backend="cudnn")
    with pytest.raises(ValueError, match=r"\(B, H, L, D\)"):
        attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="incompatible"):
        attention(q, torch.randn(1, 2, 3, 5), q)


def test_xformers_refuses_where_it_cannot_run() -> None:
    q = torch.randn(1, 1, 2, 8)
    message = "no CPU kernels" if xformers_available() else "does not import"
    with pytest.raises(RuntimeError, match=message):
        attention(q, q, q, backend="xformers")


@pytest.mark.gpu
def test_xformers_matches_the_reference_on_gpu() -> None:
    if not xformers_available():
        pytest.skip("xformers is not installed (it is kept out of the lock)")
    q, k, v = (torch.randn(2, 4, 100, 32, device="cuda", dtype=torch.float16) for _ in range(3))
    out = attention(q, k, v, backend="xformers")
    torch.testing.assert_close(out, reference_attention(q, k, v), atol=2e-3, rtol=2e-3)


def test_backend_names_are_case_insensitive() -> None:
    q = torch.randn(1, 1, 2, 4)
    torch.testing.assert_close(attention(q, q, q, backend="MATH"), reference_attention(q, q, q))
