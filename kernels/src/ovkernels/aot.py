"""Compile every Triton kernel for a GPU architecture ahead of time, on a machine without a GPU.

The property tests run the kernels through the Triton interpreter, which accepts programs that a GPU rejects
(``tl.dot`` tiles under 16, more shared memory than an SM has) and says nothing about register pressure. This
module closes that gap without a GPU:

1. it drives each op's Triton launch path (the autograd Functions and launchers, forward and backward) at SED's
   real shapes on ``meta`` tensors, recording every launch instead of running it;
2. it compiles each distinct launch with Triton's own argument specialisation for a chosen target (``sm_90``,
   ``sm_80``, ...) through every stage down to a cubin, with the ptxas that ships in the triton wheel;
3. it reports registers, spills (``ptxas -v``) and shared memory per launch and fails on a compile error or on
   shared memory beyond the architecture's per-block limit.

Usage (``TRITON_INTERPRET`` must be unset: the interpreter replaces the JIT functions)::

    python -m ovkernels.aot --arch 90 --arch 80 --json aot.json

It relies on two Triton internals (``create_function_from_signature`` and ``JITFunction._pack_args``; written
against Triton 3.9) so that the compiled specialisation is exactly the one a launch would build; where a Triton
version lacks them it says so instead of compiling something else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ovkernels.utils import HAS_TRITON, triton_interpret

# Largest dynamic shared memory per block (KiB) and SM count of the usual part of each architecture.
SHARED_LIMIT_KIB = {75: 64, 80: 163, 86: 99, 89: 99, 90: 227, 100: 227, 120: 99}
SM_COUNT = {75: 40, 80: 108, 86: 84, 89: 128, 90: 132, 100: 148, 120: 84}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# SED ConvNeXt-B at 768: decoder channels per stage and map side (24x24 -> 96x96); linear attention uses 4 heads.
SED_STAGES = ((128, 24), (64, 48), (32, 96))
SED_CLASS_COUNTS = (150, 847)
SED_KERNEL_SIZE = 9
SED_HEADS = 4
# A vocabulary longer than 2048 takes the streaming top-k path; compile it too.
LONG_VOCABULARY = 3000


@dataclass
class Launch:
    """One recorded kernel launch: the JIT function and the exact arguments a launcher passed it."""

    kernel: Any
    args: tuple
    kwargs: dict


@dataclass
class CompileReport:
    """What compiling one distinct launch for one architecture gave."""

    kernel: str
    arch: int
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int
    shared_bytes: int = 0
    registers: int | None = None
    spill_bytes: int | None = None
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _require_compiler() -> None:
    if not HAS_TRITON:
        raise RuntimeError("ahead-of-time compilation needs triton (pip install triton)")
    if triton_interpret():
        raise RuntimeError(
            "TRITON_INTERPRET is set, so the kernels were defined as interpreted functions; "
            "run `python -m ovkernels.aot` in a process without TRITON_INTERPRET"
        )


@contextlib.contextmanager
def record_launches(sm_count: int = 132) -> Iterator[list[Launch]]:
    """Within the block, Triton launches are recorded into the yielded list instead of being run.

    ``sm_count`` replaces the device query that sizes persistent grids (the depthwise weight-gradient reduction),
    so the recorded launches are the ones a GPU with that many SMs would see.
    """
    _require_compiler()
    from triton.runtime import jit

    from ovkernels import depthwise_conv

    if not hasattr(jit, "create_function_from_signature") or not hasattr(jit.JITFunction, "_pack_args"):
        raise RuntimeError(
            f"ovkernels.aot needs Triton's launch-binding internals (written against triton 3.9); "
            f"triton {triton_version()} does not have them"
        )
    JITFunction = jit.JITFunction

    launches: list[Launch] = []

    def fake_run(self: Any, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> None:
        launches.append(Launch(self, args, dict(kwargs)))

    original_run, original_sms = JITFunction.run, depthwise_conv.num_sms
    JITFunction.run = fake_run
    depthwise_conv.num_sms = lambda device: sm_count
    try:
        yield launches
    finally:
        JITFunction.run = original_run
        depthwise_conv.num_sms = original_sms


def triton_version() -> str:
    import triton

    return triton.__version__


def _meta(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype, requires_grad=dtype.is_floating_point)


def _backward(out: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> None:
    torch.autograd.grad(out, inputs, torch.empty_like(out))


def trace_sed_launches(dtypes: tuple[str, ...] = ("fp32", "fp16", "bf16"), sm_count: int = 132) -> list[Launch]:
    """Every launch the kernels make at SED's shapes (ConvNeXt-B at 768, T = 150 and 847), forward and backward.

    Args:
        dtypes: input dtypes among "fp32", "fp16", "bf16".
        sm_count: SMs of the target GPU (sizes the weight-gradient grid).

    Returns:
        The recorded launches, duplicates included (see :func:`distinct_launches`).
    """
    from ovkernels.depthwise_conv import MAX_KERNEL_SIZE, DepthwiseConv2dFunction
    from ovkernels.linear_attention import LinearAttentionFunction
    from ovkernels.topk_gather import GatherCategoriesFunction, _compact_launch, _topk_mask_launch

    unknown = sorted(set(dtypes) - set(DTYPES))
    if unknown:
        raise ValueError(f"unknown dtypes {unknown}; choose from {sorted(DTYPES)}")
    batch = 2
    with record_launches(sm_count) as launches:
        for name in dtypes:
            dtype = DTYPES[name]
            for channels, side in SED_STAGES:
                for classes in SED_CLASS_COUNTS:
                    x = _meta(batch * classes, channels, side, side, dtype=dtype)
                    w = _meta(channels, 1, SED_KERNEL_SIZE, SED_KERNEL_SIZE, dtype=dtype)
                    b = _meta(channels, dtype=dtype)
                    _backward(DepthwiseConv2dFunction.apply(x, w, b), (x, w, b))

                    q, k, v = (_meta(batch * side * side, classes, SED_HEADS, channels // SED_HEADS, dtype=dtype)
                               for _ in range(3))
                    _backward(LinearAttentionFunction.apply(q, k, v, 1e-6), (q, k, v))

                    feats = _meta(batch, classes, channels, side, side, dtype=dtype)
                    kept = torch.zeros(batch, classes, dtype=torch.bool)
                    kept[:, ::3] = True
                    indices, offsets = _compact_launch(kept)
                    _backward(GatherCategoriesFunction.apply(feats, indices, offsets), (feats,))
            # The largest supported kernel, once: its (taps x pixels) weight-gradient tile is the biggest.
            x = _meta(batch, SED_STAGES[0][0], 24, 24, dtype=dtype)
            w = _meta(SED_STAGES[0][0], 1, MAX_KERNEL_SIZE, MAX_KERNEL_SIZE, dtype=dtype)
            _backward(DepthwiseConv2dFunction.apply(x, w, None), (x, w))
            for classes in (*SED_CLASS_COUNTS, LONG_VOCABULARY):
                _topk_mask_launch(_meta(batch, classes, 24, 24, dtype=dtype).detach(), k=8)
    return launches


def _launch_key(launch: Launch) -> tuple:
    def describe(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            return ("tensor", a.dtype)
        if isinstance(a, int) and not isinstance(a, bool):
            # Triton specialises ints equal to 1 and ints divisible by 16; other values share one binary.
            return ("int", a == 1, a % 16 == 0)
        return ("value", a) if isinstance(a, (bool, str)) else ("value", type(a).__name__)

    constexpr = {p.name for p in launch.kernel.params if p.is_constexpr}
    names = [p.name for p in launch.kernel.params]
    args = tuple(
        (n, a if n in constexpr else describe(a)) for n, a in zip(names, launch.args, strict=False)
    ) + tuple(sorted((k, v if k in constexpr or not isinstance(v, torch.Tensor) else describe(v))
                     for k, v in launch.kwargs.items()))
    return (launch.kernel.__name__, args)


def distinct_launches(launches: list[Launch]) -> list[Launch]:
    """One launch per distinct binary (kernel, argument dtypes, constexprs and launch options)."""
    seen: dict[tuple, Launch] = {}
    for launch in launches:
        seen.setdefault(_launch_key(launch), launch)
    return list(seen.values())


def _ptxas_usage(ptx: str, arch: int) -> tuple[int | None, int | None]:
    """(registers, spill-store bytes) of the compiled kernel, from ``ptxas -v`` (None where ptxas is missing)."""
    from triton.backends.nvidia.compiler import get_ptxas

    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        try:
            out = subprocess.run(
                [get_ptxas(arch).path, "-v", f"--gpu-name=sm_{arch}{suffix}", str(src), "-o", str(Path(tmp) / "k.o")],
                capture_output=True, text=True, check=True,
            )
        except (OSError, subprocess.CalledProcessError):
            return None, None
    log = out.stdout + out.stderr
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores", log)
    return (int(regs.group(1)) if regs else None, int(spills.group(1)) if spills else None)


def compile_launch(launch: Launch, arch: int) -> CompileReport:
    """Compile one recorded launch for ``sm_<arch>`` down to a cubin and measure its resources."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = launch.kernel
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, launch.kwargs, bound, specialization, options)
    names = [p.name for p in kernel.params]
    report = CompileReport(
        kernel=kernel.__name__,
        arch=arch,
        signature={k: v for k, v in signature.items() if v != "constexpr"},
        constexprs={names[path[0]]: value for path, value in constexprs.items()},
        num_warps=options.num_warps,
    )
    start = time.perf_counter()
    try:
        compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                                  options=options.__dict__)
    except Exception as e:  # noqa: BLE001 - any compiler failure is the finding we report
        report.error = f"{type(e).__name__}: {e}".strip()[:2000]
        return report
    report.seconds = time.perf_counter() - start
    report.shared_bytes = int(compiled.metadata.shared)
    report.registers, report.spill_bytes = _ptxas_usage(compiled.asm["ptx"], arch)
    limit = SHARED_LIMIT_KIB.get(arch)
    if limit is not None and report.shared_bytes > limit * 1024:
        report.error = f"needs {report.shared_bytes} B of shared memory, sm_{arch} allows {limit} KiB per block"
    if report.spill_bytes:
        report.warnings.append(f"{report.spill_bytes} B of register spills")
    return report


def compile_all(archs: tuple[int, ...] = (90,), dtypes: tuple[str, ...] = ("fp32", "fp16", "bf16"),
                only: str | None = None, verbose: bool = True) -> list[CompileReport]:
    """Trace SED's launches and compile each distinct one for every architecture in ``archs``.

    Args:
        archs: compute capabilities x10 (>= 75).
        dtypes: input dtypes among "fp32", "fp16", "bf16".
        only: compile just the kernels whose name contains this text.
        verbose: print one line per compiled kernel.
    """
    _require_compiler()
    reports = []
    for arch in archs:
        if arch < 75:
            raise ValueError(f"arch must be >= 75 (Turing or newer), got {arch}")
        launches = distinct_launches(trace_sed_launches(dtypes, SM_COUNT.get(arch, 132)))
        launches = [launch for launch in launches if only is None or only in launch.kernel.__name__]
        if not launches:
            raise ValueError(f"no kernel name contains {only!r}")
        for i, launch in enumerate(launches, 1):
            report = compile_launch(launch, arch)
            reports.append(report)
            if verbose:
                print(f"[sm_{arch} {i}/{len(launches)}] {_format(report)}", flush=True)  # noqa: T201 - progress
    return reports


def _format(r: CompileReport) -> str:
    consts = ", ".join(f"{k}={v}" for k, v in r.constexprs.items())
    dtypes = sorted({v for v in r.signature.values() if v.startswith("*")})
    if r.error:
        return f"FAIL {r.kernel}({consts}) {dtypes}: {r.error}"
    regs = "?" if r.registers is None else r.registers
    spills = "?" if r.spill_bytes is None else r.spill_bytes
    return (f"ok   {r.kernel}({consts}) {dtypes} warps={r.num_warps} regs={regs} spill={spills}B "
            f"smem={r.shared_bytes}B {r.seconds:.2f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ovkernels.aot",
        description="Compile every ovkernels Triton kernel at SED's shapes for a GPU architecture, without a GPU.",
    )
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10, e.g. 90 (repeatable)")
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="input dtype (repeatable)")
    parser.add_argument("--only", help="compile just the kernels whose name contains this text")
    parser.add_argument("--json", type=Path, help="write every report to this JSON file")
    args = parser.parse_args(argv)
    try:
        reports = compile_all(tuple(args.arch or [90]), tuple(args.dtype or DTYPES), args.only)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)  # noqa: T201 - CLI output
        return 2
    failed = [r for r in reports if not r.ok]
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in reports], indent=2, default=str))
    print(f"{len(reports) - len(failed)}/{len(reports)} kernels compiled"  # noqa: T201 - CLI output
          + (f"; {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
