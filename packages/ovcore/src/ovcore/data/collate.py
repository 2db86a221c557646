"""Batching of sample dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["collate_samples"]


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of sample dicts into a batch dict (use as ``DataLoader(collate_fn=collate_samples)``).

    Tensors are stacked (they must have the same shape), numbers become a tensor, anything else (names) a list.

    Raises:
        ValueError: empty batch, differing keys, or tensors of different shapes (the message says how to fix it).
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty batch")
    keys = list(samples[0])
    for i, sample in enumerate(samples[1:], 1):
        if list(sample) != keys:
            raise ValueError(f"sample {i} has keys {sorted(sample)}, sample 0 has {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            shapes = [tuple(v.shape) for v in values]
            if len(set(shapes)) > 1:
                names = [str(s.get("name", i)) for i, s in enumerate(samples)]
                listing = ", ".join(f"{n}: {sh}" for n, sh in list(zip(names, shapes, strict=True))[:4])
                raise ValueError(
                    f"cannot stack {key!r} of different shapes ({listing}{', ...' if len(shapes) > 4 else ''}). "
                    "Use a transform that produces a fixed size (SEDTrainTransform / MMSegTrainTransform crop and "
                    "pad), or batch_size=1 for evaluation at the original resolution."
                )
            batch[key] = torch.stack(values)
        elif isinstance(first, (bool, int, float)):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    return batch
