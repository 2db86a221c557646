"""torch.distributed plumbing: process-group setup from ``torchrun``'s environment, DDP, samplers, reductions.

One code path serves every launch: a plain ``python`` process (no ``WORLD_SIZE``) runs single-process without a
process group; ``torchrun --nproc_per_node N`` (one node) or ``torchrun --nnodes M --node_rank R
--rdzv_endpoint HOST:PORT ...`` (several nodes) sets ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR``
and the group is created with NCCL on CUDA or Gloo on CPU.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler


@dataclass
class DistInfo:
    """Where this process stands in the job."""

    rank: int
    """Global rank."""
    local_rank: int
    """Rank on this node (picks the GPU)."""
    world_size: int
    """Number of processes."""
    device: torch.device
    """This process's device."""
    backend: str | None
    """Process-group backend, None when single-process."""
    owns_group: bool = False
    """Whether :func:`init_distributed` created the group (and :func:`cleanup` must destroy it)."""

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that logs and writes files."""
        return self.rank == 0


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """The device of this process: ``auto`` is ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.

    Raises:
        RuntimeError: CUDA was asked for but is not available.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def init_distributed(device: str = "auto", backend: str = "auto", timeout_min: float = 60.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device: See :func:`resolve_device`.
        backend: ``"auto"`` (NCCL on CUDA, Gloo on CPU), ``"nccl"`` or ``"gloo"``.
        timeout_min: Timeout of collectives, in minutes.

    Returns:
        The rank, world size and device of this process. Without ``WORLD_SIZE`` (or with 1) no group is created.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), local_rank, dist.get_world_size(), dev, dist.get_backend(), owns_group=False)
    if world_size <= 1:
        return DistInfo(0, 0, 1, dev, None)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and dev.type != "cuda":
        raise ValueError("the nccl backend needs CUDA devices; use --dist-backend gloo on CPU")
    kwargs: dict[str, Any] = {"device_id": dev} if backend == "nccl" else {}
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_min), **kwargs)
    return DistInfo(dist.get_rank(), local_rank, dist.get_world_size(), dev, backend, owns_group=True)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def get_rank() -> int:
    """Global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this is rank 0."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if get_world_size() > 1:
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; Gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
    """Average named scalars over all processes (identity without a process group).

    Every process must pass the same keys; they are reduced in sorted order in one collective.
    """
    keys = sorted(values)
    if not keys:
        return {}
    floats = [float(values[k]) for k in keys]
    if get_world_size() == 1:
        return dict(zip(keys, floats, strict=True))
    t = torch.tensor(floats, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` without a process group)."""
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_ddp(
    model: nn.Module, info: DistInfo, *, find_unused_parameters: bool = False, sync_bn: bool = False
) -> nn.Module:
    """Wrap ``model`` (already on ``info.device``) in DistributedDataParallel when there are several processes."""
    if info.world_size == 1:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [info.device] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or ``torch.compile``) wrapper."""
    while isinstance(model, nn.parallel.DistributedDataParallel) or hasattr(model, "_orig_mod"):
        model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model._orig_mod
    return model


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (seeded per epoch, tail dropped) that can start part-way through an epoch.

    Rank ``r`` of ``W`` reads positions ``r, r + W, r + 2W, ...`` of the epoch's permutation, so the k-th micro-batch
    of every rank together covers the contiguous positions ``[k*m*W, (k+1)*m*W)``: the global batches are the same
    for any world size with the same global batch, and a resumed run skips the consumed samples without loading them.
    """

    def __init__(self, dataset: Any, num_replicas: int = 1, rank: int = 0, *, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch (its permutation) and the number of this rank's samples to skip."""
        super().set_epoch(epoch)
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start {start} outside [0, {self.num_samples}]")
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start
