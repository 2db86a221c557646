"""Shared plumbing of the sample-dict transforms."""

from __future__ import annotations

from typing import Any

import torch

Sample = dict[str, Any]


class SampleTransform:
    """Base class: ``transform(sample, generator=None) -> new sample dict``.

    The generator passed to ``__call__`` wins over the one given at construction; with neither, torch's global
    RNG is used. Prefer the global RNG inside DataLoader workers: a generator stored on the transform is copied
    into every worker with the same state, so all workers would draw the same augmentations.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def _gen(self, generator: torch.Generator | None) -> torch.Generator | None:
        return generator if generator is not None else self.generator

    @staticmethod
    def _check(sample: Sample) -> tuple[torch.Tensor, torch.Tensor | None]:
        image = sample["image"]
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"sample['image'] must be a uint8 tensor (3, H, W), got {shape}")
        label = sample.get("label")
        if label is not None and tuple(label.shape) != tuple(image.shape[1:]):
            raise ValueError(f"sample['label'] has shape {tuple(label.shape)}, image is {tuple(image.shape[1:])}")
        return image, label

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"
