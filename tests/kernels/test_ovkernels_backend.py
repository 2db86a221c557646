"""Backend selection (use_triton, env vars, backend=) and the import without triton."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest
import torch
from ovk_testing import requires_triton

import ovkernels
from ovkernels import depthwise_conv, topk_gather
from ovkernels.utils import ENV_FORCE_REFERENCE, ENV_FORCE_TRITON, calculate_settings, use_triton

# The package re-exports the function `linear_attention`, which shadows the submodule attribute.
la_module = importlib.import_module("ovkernels.linear_attention")


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(ENV_FORCE_REFERENCE, raising=False)
    monkeypatch.delenv(ENV_FORCE_TRITON, raising=False)
    return monkeypatch


def test_public_api():
    expected = {
        "depthwise_conv2d",
        "linear_attention",
        "topk_category_mask",
        "compact_categories",
        "gather_categories",
    }
    for name in expected:
        assert name in ovkernels.__all__ and f"reference_{name}" in ovkernels.__all__
        assert callable(getattr(ovkernels, name)) and callable(getattr(ovkernels, f"reference_{name}"))


def test_cpu_tensors_use_the_reference(clean_env):
    assert not use_triton(torch.zeros(1))
    assert not use_triton(torch.zeros(1), backend="auto")
    assert not use_triton(torch.zeros(1), backend="reference")


def test_unknown_backend(clean_env):
    with pytest.raises(ValueError):
        use_triton(torch.zeros(1), backend="cudnn")
    with pytest.raises(ValueError):
        ovkernels.depthwise_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), backend="fast")


@requires_triton
def test_force_triton_env(clean_env):
    clean_env.setenv(ENV_FORCE_TRITON, "1")
    assert use_triton(torch.zeros(1))
    assert not use_triton(torch.zeros(1), backend="reference")  # the argument wins over the environment
    clean_env.setenv(ENV_FORCE_REFERENCE, "1")
    assert not use_triton(torch.zeros(1))  # forcing the reference wins over forcing Triton


@requires_triton
def test_force_triton_without_interpreter_fails_loudly(clean_env):
    clean_env.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        use_triton(torch.zeros(1), backend="triton")


@pytest.mark.gpu
def test_cuda_tensors_use_triton_unless_forced(clean_env):
    x = torch.zeros(1, device="cuda")
    assert use_triton(x)
    clean_env.setenv(ENV_FORCE_REFERENCE, "1")
    assert not use_triton(x)
    assert use_triton(x, backend="triton")


class _Called(Exception):
    pass


def _spy(*args, **kwargs):
    raise _Called


@requires_triton
@pytest.mark.parametrize("env, expect_triton", [(ENV_FORCE_TRITON, True), (ENV_FORCE_REFERENCE, False)])
def test_public_functions_dispatch(clean_env, env, expect_triton):
    clean_env.setenv(env, "1")
    clean_env.setattr(depthwise_conv.DepthwiseConv2dFunction, "apply", _spy)
    clean_env.setattr(la_module.LinearAttentionFunction, "apply", _spy)
    clean_env.setattr(topk_gather.GatherCategoriesFunction, "apply", _spy)
    clean_env.setattr(topk_gather, "_topk_mask_launch", _spy)
    clean_env.setattr(topk_gather, "_compact_launch", _spy)
    x = torch.randn(1, 2, 4, 4)
    q = torch.randn(1, 3, 1, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    calls = [
        lambda: ovkernels.depthwise_conv2d(x, torch.randn(2, 1, 3, 3)),
        lambda: ovkernels.linear_attention(q, q, q),
        lambda: ovkernels.topk_category_mask(torch.randn(1, 3, 2, 2), 1),
        lambda: ovkernels.compact_categories(mask),
        lambda: ovkernels.gather_categories(torch.randn(1, 3, 2), torch.tensor([0, 2]), torch.tensor([0, 2])),
    ]
    for call in calls:
        if expect_triton:
            with pytest.raises(_Called):
                call()
        else:
            call()


def test_calculate_settings():
    assert calculate_settings(1000) == (1024, 4)
    assert calculate_settings(5000)[0] == 8192
    with pytest.raises(RuntimeError):
        calculate_settings(65537)


def test_import_without_triton():
    # A CPU-only install: the package imports, every function runs its reference, Triton fails loudly.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["triton"] = None  # make `import triton` fail
        import torch
        import ovkernels
        assert not ovkernels.HAS_TRITON
        x = torch.randn(1, 2, 5, 5)
        y = ovkernels.depthwise_conv2d(x, torch.randn(2, 1, 3, 3))
        q = torch.randn(1, 4, 1, 2)
        ovkernels.linear_attention(q, q, q)
        mask = ovkernels.topk_category_mask(torch.randn(1, 4, 2, 2), 1)
        idx, off = ovkernels.compact_categories(mask)
        ovkernels.gather_categories(torch.randn(1, 4, 3), idx, off)
        try:
            ovkernels.depthwise_conv2d(x, torch.randn(2, 1, 3, 3), backend="triton")
        except RuntimeError:
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
