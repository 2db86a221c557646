"""Chunk-level CPU parallelism for the decoder's inference path.

The inference path splits every stage into independent chunks (classes or pixels). On CPU, running each chunk on
its own worker thread with one intra-op thread replaces thousands of OpenMP fork/join barriers (one per op) by one
join per stage. That matters when other processes share the cores: a descheduled OpenMP thread stalls every op of
the others at its barrier (the chunked path then ran ~15x slower with one busy neighbour process); independent
chunk workers just keep going. On an idle machine it is as fast or faster (each core keeps its own chunk in cache).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import torch

from ovkernels import use_triton

__all__ = ["ChunkRunner"]

CPU_BUDGET = 1 << 19  # 2 MB of fp32: a chunk's working set stays in the L2 cache
ACCEL_BUDGET = 1 << 26
_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sed-chunks")
        return pool


def _triton_on_cpu(device: torch.device) -> bool:
    """True when `ovkernels` would run Triton's CPU interpreter (a debugging mode), which is not thread-safe."""
    try:
        return bool(use_triton(torch.empty(0, device=device)))
    except RuntimeError:  # Triton forced but unusable here: the kernels themselves will raise
        return False


class ChunkRunner:
    """Context manager running ``fn(i, j)`` over chunk ranges, in parallel over threads on CPU.

    Inside the context the intra-op thread count is 1 (restored on exit), so that ops issued between maps and the
    ops of each worker do not oversubscribe the cores. Grad mode is thread-local in PyTorch, so the workers
    re-enter the caller's no-grad / inference mode.

    Args:
        device: the tensors' device; only CPU uses worker threads (CUDA ops are asynchronous anyway).
        workers: number of worker threads; default ``torch.get_num_threads()``.
        budget: elements of the largest intermediate of one chunk; default 512K on CPU, 64M elsewhere.
    """

    def __init__(self, device: torch.device, workers: int | None = None, budget: int | None = None) -> None:
        n = torch.get_num_threads() if workers is None else int(workers)
        self.workers = n if device.type == "cpu" and n > 1 and not _triton_on_cpu(device) else 1
        self.budget = budget if budget is not None else (CPU_BUDGET if device.type == "cpu" else ACCEL_BUDGET)
        self._inference = torch.is_inference_mode_enabled()
        self._threads = 0

    def __enter__(self) -> ChunkRunner:
        if self.workers > 1:
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.workers > 1:
            torch.set_num_threads(self._threads)

    def split(self, n: int, per_item: int) -> list[tuple[int, int]]:
        """Ranges covering 0..n within the budget (`per_item` elements each), >= 2 per worker when n allows."""
        step = max(1, self.budget // max(1, per_item))
        if self.workers > 1:
            step = min(step, -(-n // (2 * self.workers)))
        step = max(1, step)
        return [(i, min(n, i + step)) for i in range(0, n, step)]

    def map(self, fn: Callable[[int, int], None], ranges: Sequence[tuple[int, int]]) -> None:
        """Call ``fn(i, j)`` for every range; returns when all are done (worker exceptions propagate)."""
        if self.workers == 1 or len(ranges) < 2:
            for i, j in ranges:
                fn(i, j)
            return

        def call(r: tuple[int, int]) -> None:
            with torch.inference_mode() if self._inference else torch.no_grad():
                fn(*r)

        for _ in _pool(self.workers).map(call, ranges):
            pass
