"""Tiny model, dataset and config shared by the training-engine tests (also imported by the subprocess workers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ovcore.train import TrainConfig


class TinySegmenter(nn.Module):
    """Two convolutions and a GroupNorm; returns two named losses, as the model contract asks."""

    def __init__(self, num_classes: int = 4, width: int = 8, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.GroupNorm(2, width)
        self.drop = nn.Dropout2d(dropout)
        self.conv2 = nn.Conv2d(width, num_classes, 1)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        return self.conv2(self.drop(F.relu(self.norm(self.conv1(x)))))

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        logits = self.logits(batch["image"])
        return {
            "ce": F.cross_entropy(logits, batch["label"], ignore_index=255),
            "l2": 1e-3 * logits.pow(2).mean(),
        }


class RandomSegmentation(Dataset):
    """Fixed random images and labels (no ignore pixels), with a random flip drawn from the global torch RNG."""

    def __init__(self, num_images: int = 16, size: int = 8, num_classes: int = 4, seed: int = 0, flip: bool = True):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (num_images, 3, size, size), generator=g, dtype=torch.uint8)
        self.labels = torch.randint(0, num_classes, (num_images, size, size), generator=g)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        image, label = self.images[i], self.labels[i]
        if self.flip and torch.rand(()) < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return {"image": image, "label": label, "name": f"img{i}"}


def tiny_config(output_dir, **overrides) -> TrainConfig:
    """A CPU config that runs in a fraction of a second."""
    base = dict(
        output_dir=str(output_dir),
        max_iters=8,
        batch_size=4,
        num_workers=0,
        device="cpu",
        log_every=1,
        checkpoint_every=0,
        tensorboard=False,
        progress=False,
        deterministic=True,
    )
    base.update(overrides)
    cfg = TrainConfig(**{k: v for k, v in base.items() if k not in ("lr", "schedule_name")})
    cfg.optim.lr = overrides.get("lr", 1e-2)
    cfg.schedule.name = overrides.get("schedule_name", "cosine")
    return cfg


def read_metrics(output_dir) -> list[dict]:
    """The records of output_dir/metrics.jsonl."""
    import json
    from pathlib import Path

    return [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines() if line]


def final_weights(output_dir) -> dict[str, torch.Tensor]:
    """Model state of the newest checkpoint."""
    from ovcore.train import Checkpointer, load_checkpoint

    path = Checkpointer(f"{output_dir}/checkpoints").latest()
    assert path is not None, f"no checkpoint in {output_dir}"
    return load_checkpoint(path)["model"]


def resume_config(output_dir, **overrides) -> TrainConfig:
    """The run that the resume tests interrupt: checkpoints every 3 of 9 iterations, dropout in the model."""
    return tiny_config(output_dir, **{"max_iters": 9, "checkpoint_every": 3, "keep_last": 2, **overrides})


def dist_config(output_dir, **overrides) -> TrainConfig:
    """The run compared between 2 processes (x2 accumulation) and 1 process: global batch 4 in both."""
    return tiny_config(
        output_dir, **{"max_iters": 6, "checkpoint_every": 3, "keep_last": 0, "eval_every": 3, **overrides}
    )


def dropout_model() -> TinySegmenter:
    return TinySegmenter(dropout=0.2)
