"""Fixtures of the CLIP-ZSS tests: tiny random models (tiny ViT teacher, random timm students) and demo batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def demo_batch(n: int = 4, size: int = 64, seed: int = 0, unseen: tuple[int, ...] = (6, 7)) -> dict[str, Any]:
    """Demo scenes with the unseen classes remapped to ignore (the engine's training input)."""
    from ovcore.data import DemoSegmentation, remap_unseen_to_ignore

    ds = DemoSegmentation(n, size=size, seed=seed)
    images = torch.stack([ds[i]["image"] for i in range(n)])
    labels = torch.stack([ds[i]["label"] for i in range(n)])
    return {"image": images, "label": remap_unseen_to_ignore(labels, list(unseen)), "full_label": labels}


@pytest.fixture(autouse=True)
def _one_thread():
    """Run the tiny CPU workloads on one thread: on a shared 2-core machine two OpenMP threads spend most of their
    time waiting for each other at every small op (a 4 s test took 120 s under load), one thread never waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_tiny():
    """Factory: ``make_tiny(preset="clipzss_tiny_convnext_segformer", **overrides) -> CLIPZSS`` at a 64 crop."""
    import clipzss

    def build(preset: str = "clipzss_tiny_convnext_segformer", **overrides: Any) -> Any:
        overrides.setdefault("crop_size", 64)
        torch.manual_seed(0)
        return clipzss.create_clipzss(preset, **overrides)

    return build
