"""Resumable data order and per-sample seeded augmentation."""

from __future__ import annotations

import itertools
import random

import numpy as np
import torch
from train_fixtures import RandomSegmentation

from ovcore.train import ResumableDistributedSampler, ResumableLoader, SeededSamples, sample_seed


def _names(batches):
    return [tuple(b["name"]) for b in batches]


def test_resume_at_any_micro_batch_continues_the_same_stream() -> None:
    data = RandomSegmentation(10)  # 10 // 3 = 3 micro-batches per epoch, one sample dropped per epoch
    loader = ResumableLoader(data, micro_batch=3, seed=5)
    full = list(itertools.islice(loader.iterate(0), 10))
    assert loader.position(7) == (2, 1)
    for start in (1, 3, 4, 8):
        tail = list(itertools.islice(ResumableLoader(data, micro_batch=3, seed=5).iterate(start), 10 - start))
        assert _names(tail) == _names(full[start:])
        for a, b in zip(tail, full[start:], strict=True):  # same augmentation (flips), not just the same images
            torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    # Epochs differ in order, and the seed changes the order.
    assert _names(full[:3]) != _names(full[3:6])
    other = list(itertools.islice(ResumableLoader(data, micro_batch=3, seed=6).iterate(0), 3))
    assert _names(other) != _names(full[:3])


def test_ranks_together_cover_the_single_process_global_batch() -> None:
    data = RandomSegmentation(16)
    single = list(itertools.islice(ResumableLoader(data, micro_batch=4, seed=1).iterate(0), 8))
    ranks = [
        list(itertools.islice(ResumableLoader(data, micro_batch=2, world_size=2, rank=r, seed=1).iterate(0), 8))
        for r in range(2)
    ]
    for k in range(8):
        union = sorted(ranks[0][k]["name"] + ranks[1][k]["name"])
        assert union == sorted(single[k]["name"])
        for r in range(2):
            for name, image in zip(ranks[r][k]["name"], ranks[r][k]["image"], strict=True):
                j = single[k]["name"].index(name)
                torch.testing.assert_close(image, single[k]["image"][j], rtol=0, atol=0)  # same flip everywhere


def test_workers_do_not_change_the_batches() -> None:
    data = RandomSegmentation(8)
    main = list(itertools.islice(ResumableLoader(data, micro_batch=2, seed=3).iterate(2), 6))
    workers = list(itertools.islice(ResumableLoader(data, micro_batch=2, seed=3, num_workers=2).iterate(2), 6))
    for a, b in zip(main, workers, strict=True):
        assert a["name"] == b["name"]
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)


def test_seeded_samples_leave_the_global_rng_alone() -> None:
    view = SeededSamples(RandomSegmentation(4), seed=0)
    state = torch.get_rng_state()
    py_state, np_state = random.getstate(), np.random.get_state()
    a = view[(3, 1)]["image"]
    assert torch.equal(torch.get_rng_state(), state)
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and np.random.get_state()[2] == np_state[2]
    view[(0, 2)]
    torch.testing.assert_close(view[(3, 1)]["image"], a, rtol=0, atol=0)
    assert sample_seed(0, 3, 1) != sample_seed(0, 1, 3)


def test_sampler_start_and_length() -> None:
    s = ResumableDistributedSampler(range(11), num_replicas=2, rank=1, seed=0)
    s.set_epoch(4)
    full = list(s)
    assert len(full) == 5 and len(s) == 5
    s.set_epoch(4, start=3)
    assert list(s) == full[3:] and len(s) == 2
