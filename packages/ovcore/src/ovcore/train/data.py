"""A resumable, infinite stream of training micro-batches with per-sample seeded augmentation.

Two properties make ``--resume`` exact and make N processes match one process on the same global batch:

* order: a :class:`~ovcore.train.distributed.ResumableDistributedSampler` fixes which samples form micro-batch k of
  epoch e for every rank, and a resumed run starts at micro-batch ``iteration * grad_accum_steps`` without loading
  the skipped samples;
* augmentation: sample ``i`` of epoch ``e`` is loaded with Python's ``random``, NumPy's global RNG and torch's CPU
  RNG seeded from ``(seed, e, i)`` (and restored afterwards), so random crops and flips do not depend on the number
  of workers, on prefetching, on the world size, or on where the run was resumed. Transforms that keep their own
  generator objects are outside this guarantee.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .distributed import ResumableDistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of sample ``index`` in ``epoch``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed ``random``, NumPy's global RNG and torch's CPU RNG for the block, then restore their states."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    # Not torch.manual_seed: that would also reseed (and not restore) the CUDA generators of the main process.
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


class SeededSamples(Dataset):
    """Dataset view indexed by ``(epoch, index)`` that loads each sample under :func:`isolated_rng`."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with isolated_rng(sample_seed(self.seed, epoch, index)):
            return self.dataset[index]


class _EpochTagged(Sampler):
    def __init__(self, sampler: ResumableDistributedSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class ResumableLoader:
    """Infinite micro-batches of one process: epoch after epoch, each in the order of its seeded permutation.

    Args:
        dataset: Map-style dataset of samples.
        micro_batch: Samples per micro-batch on this process.
        world_size: Number of processes.
        rank: This process's rank.
        seed: Seed of the permutations and of the per-sample augmentation seeds.
        num_workers: DataLoader workers.
        collate_fn: DataLoader collate function (default: torch's ``default_collate``).
        pin_memory: Pin host memory (for CUDA).
        shuffle: Shuffle each epoch (else sequential order).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        micro_batch: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        shuffle: bool = True,
    ):
        self.micro_batch = micro_batch
        self.sampler = ResumableDistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=seed)
        self.batches_per_epoch = self.sampler.num_samples // micro_batch
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"dataset of {len(dataset)} samples is smaller than one global micro-batch "  # type: ignore[arg-type]
                f"({micro_batch} x {world_size} processes)"
            )
        # A private generator: creating a DataLoader iterator draws a base seed, which must not consume the global
        # RNG (a resumed run creates one more iterator than an uninterrupted run).
        generator = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            SeededSamples(dataset, seed),
            batch_size=micro_batch,
            sampler=_EpochTagged(self.sampler),
            drop_last=True,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            generator=generator,
        )

    def position(self, micro_batches_done: int) -> tuple[int, int]:
        """``(epoch, micro-batch within the epoch)`` after ``micro_batches_done`` micro-batches."""
        return divmod(micro_batches_done, self.batches_per_epoch)

    def iterate(self, start: int = 0) -> Iterator[Any]:
        """Micro-batches from number ``start`` (counted from the beginning of training) onwards, forever."""
        epoch, skip = self.position(start)
        while True:
            self.sampler.set_epoch(epoch, start=skip * self.micro_batch)
            yield from self.loader
            epoch, skip = epoch + 1, 0
