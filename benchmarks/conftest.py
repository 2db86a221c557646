"""Benchmark plumbing: collect ``bench_*.py``, time with pytest-benchmark, record peak memory, write JSON.

Run with ``pytest benchmarks/ --benchmark`` (the root conftest skips this folder otherwise). Every measured case
becomes a row ``{kernel, provider, mode, shape, dtype, median_ms, peak_mem_mb, device, ...}`` in
``benchmarks/results/<kernel>.json`` together with the speed-up of each provider over ``reference`` for the same
case. ``peak_mem_mb`` is the CUDA peak allocated on top of the inputs during one call; it is ``null`` on CPU,
where only the reference and baseline paths are timed (at reduced shapes) and figures are indicative only.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

RESULTS_DIR = Path(__file__).parent / "results"
HAS_CUDA = torch.cuda.is_available()
_ROWS: dict[str, list[dict[str, Any]]] = defaultdict(list)
BASELINES = ("reference", "official")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # The root config keeps pytest's default test_*.py pattern; bench_*.py files are collected here. Files named
    # on the command line are already collected by pytest itself.
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def device_name() -> str:
    if HAS_CUDA:
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _sync() -> None:
    if HAS_CUDA:
        torch.cuda.synchronize()


def _peak_mb(fn: Callable[[], Any]) -> float | None:
    if not HAS_CUDA:
        return None
    _sync()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    _sync()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


@pytest.fixture
def measure(benchmark: Any) -> Callable[..., dict[str, Any]]:
    """Time ``fn`` with ``benchmark.pedantic`` and record a result row; returns the row."""

    def run(
        fn: Callable[[], Any],
        *,
        kernel: str,
        provider: str,
        mode: str,
        shape: tuple | str,
        dtype: torch.dtype,
        rounds: int | None = None,
        warmup_rounds: int = 2,
        **extra: Any,
    ) -> dict[str, Any]:
        fn()  # compile / warm caches before anything is measured
        peak = _peak_mb(fn)

        def timed() -> None:
            fn()
            _sync()

        benchmark.pedantic(timed, rounds=rounds or (20 if HAS_CUDA else 5), warmup_rounds=warmup_rounds)
        row = {
            "kernel": kernel,
            "provider": provider,
            "mode": mode,
            "shape": str(shape),
            "dtype": str(dtype).replace("torch.", ""),
            "median_ms": benchmark.stats.stats.median * 1e3,
            "peak_mem_mb": peak,
            "device": device_name(),
            **extra,
        }
        benchmark.extra_info.update(row)
        _ROWS[kernel].append(row)
        return row

    return run


def _speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median-time ratio baseline / provider for every case that has a baseline row ("reference", "official")."""
    skip = {"provider", "median_ms", "peak_mem_mb"}

    def case(r: dict[str, Any]) -> tuple:
        return tuple((k, str(v)) for k, v in r.items() if k not in skip)

    out = []
    for baseline in BASELINES:
        base = {case(r): r for r in rows if r["provider"] == baseline}
        for r in rows:
            if r["provider"] not in BASELINES and case(r) in base:
                ratio = base[case(r)]["median_ms"] / r["median_ms"]
                out.append({**dict(case(r)), "provider": r["provider"], f"speedup_vs_{baseline}": ratio})
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _ROWS:
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "note": "CPU rows time the PyTorch reference / official baselines only, at reduced shapes"
        if not HAS_CUDA
        else "CUDA rows; peak_mem_mb is the allocation peak above the inputs during one call",
    }
    for kernel, rows in _ROWS.items():
        payload = {"meta": meta, "rows": rows, "speedups": _speedups(rows)}
        (RESULTS_DIR / f"{kernel}.json").write_text(json.dumps(payload, indent=2) + "\n")


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The SED benchmarks' top-k rule forced to the same sizes in both providers (``forced_cer.ForcedSelection``)."""
    import official_sed  # tests/sed, on sys.path via the root config
    from forced_cer import ForcedSelection

    import sed.cer

    sel = ForcedSelection()
    monkeypatch.setattr(sed.cer, "topk_category_mask", lambda logits, k: sel.mask(logits))
    monkeypatch.setattr(official_sed, "valid_idx", lambda logits, k: sel.mask(logits)[0])
    return sel
