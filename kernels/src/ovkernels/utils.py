"""Launch helpers and backend selection shared by every kernel (Liger-Kernel ``ops/utils.py`` pattern).

Backend choice, in order of precedence:

1. an explicit ``backend=`` argument on a public function (``"auto"``, ``"triton"`` or ``"reference"``);
2. ``OVKERNELS_FORCE_REFERENCE=1``: always the pure PyTorch reference;
3. ``OVKERNELS_FORCE_TRITON=1``: always Triton, also for CPU tensors when ``TRITON_INTERPRET=1`` (tests);
4. otherwise Triton for CUDA tensors when ``triton`` imports, the reference everywhere else.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch

try:  # triton is optional: CPU-only installs import the package and always run the references
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - exercised in a subprocess test

    class _MissingTriton:
        """Stand-in so that the kernel modules still define their (never launched) ``@triton.jit`` functions."""

        constexpr = Any

        def jit(self, fn: Callable | None = None, **kwargs: Any) -> Callable:
            return fn if fn is not None else (lambda f: f)

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"triton is not installed (needed for triton.{name}); use the reference backend")

    triton = _MissingTriton()  # type: ignore[assignment]
    tl = triton  # type: ignore[assignment]
    HAS_TRITON = False

ENV_FORCE_REFERENCE = "OVKERNELS_FORCE_REFERENCE"
ENV_FORCE_TRITON = "OVKERNELS_FORCE_TRITON"
BACKENDS = ("auto", "triton", "reference")
MAX_FUSED_SIZE = 65536


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def triton_interpret() -> bool:
    """True when the Triton interpreter is on, i.e. kernels can run on CPU tensors."""
    return _env_flag("TRITON_INTERPRET")


def use_triton(t: torch.Tensor, backend: str | None = None) -> bool:
    """Decide whether a public function runs its Triton kernel or its PyTorch reference for tensor ``t``.

    Args:
        t: the main input tensor (its device decides the automatic choice).
        backend: ``None``/``"auto"`` (environment and device decide), ``"triton"`` or ``"reference"``.

    Returns:
        True for the Triton path.

    Raises:
        ValueError: unknown ``backend``.
        RuntimeError: Triton was requested but cannot run here (not installed, or CPU tensors without the interpreter).
    """
    choice = "auto" if backend is None else backend
    if choice not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if choice == "reference":
        return False
    if choice == "auto":
        if _env_flag(ENV_FORCE_REFERENCE):
            return False
        if not _env_flag(ENV_FORCE_TRITON):
            return HAS_TRITON and t.is_cuda
    # Triton explicitly requested (argument or OVKERNELS_FORCE_TRITON): fail loudly instead of falling back.
    if not HAS_TRITON:
        raise RuntimeError("the Triton backend was requested but triton is not installed")
    if not t.is_cuda and not triton_interpret():
        raise RuntimeError("the Triton backend needs CUDA tensors, or TRITON_INTERPRET=1 (set before import) on CPU")
    return True


def calculate_settings(n: int) -> tuple[int, int]:
    """Block size (next power of two >= n) and a warp count for a one-block-per-row kernel.

    Raises:
        RuntimeError: ``n`` exceeds the largest fused block (65536).
    """
    block = next_power_of_2(n)
    if block > MAX_FUSED_SIZE:
        raise RuntimeError(f"cannot launch a block of {n} elements: the largest fused size is {MAX_FUSED_SIZE}")
    num_warps = 4
    if block >= 32768:
        num_warps = 32
    elif block >= 8192:
        num_warps = 16
    elif block >= 2048:
        num_warps = 8
    return block, num_warps


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (>= 1); pure Python so launch arithmetic works without triton."""
    return 1 << max(int(n) - 1, 0).bit_length()


def cdiv(a: int, b: int) -> int:
    """Ceiling division of non-negative ints (no triton needed)."""
    return -(-a // b)


def num_sms(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (a small constant for the interpreter keeps CPU grids tiny)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def ensure_contiguous(fn: Callable) -> Callable:
    """Make every tensor argument of an autograd ``forward``/``backward`` contiguous (Liger helper)."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
        kwargs = {k: (v.contiguous() if isinstance(v, torch.Tensor) else v) for k, v in kwargs.items()}
        return fn(ctx, *args, **kwargs)

    return wrapper


FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_float(name: str, t: torch.Tensor) -> None:
    """Raise ValueError unless ``t`` is fp32, fp16 or bf16."""
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
