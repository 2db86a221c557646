"""CLIP-ZSS class embeddings use ovcore's default progress: silent for short vocabularies, reported for long ones."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from clipzss.text import class_embeddings

DIM = 8


class _Tokenizer:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return torch.tensor([[self.ids.setdefault(p, len(self.ids))] for p in prompts], dtype=torch.long)


class _TextModel(nn.Module):
    """``encode_text``: a fixed vector per prompt id."""

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        ids = tokens[:, :1].float()
        return torch.cat([torch.sin(ids * (k + 1)) + 2.0 for k in range(DIM)], dim=1)


def _encode(num_classes: int, num_templates: int, caplog: pytest.LogCaptureFixture) -> list[str]:
    names = [f"class {i}" for i in range(num_classes)]
    templates = [f"template {j} {{}}" for j in range(num_templates)]
    with caplog.at_level(logging.INFO, logger="ovcore.text"):
        out = class_embeddings(_TextModel(), _Tokenizer(), names, templates)
    assert out.shape == (num_classes, DIM)
    return [r.getMessage() for r in caplog.records if r.name.startswith("ovcore.text")]


def test_long_vocabulary_reports_progress(caplog: pytest.LogCaptureFixture) -> None:
    # 200 classes x 10 templates = 2000 prompts = 8 batches of 256: ovcore reports (log lines off a terminal).
    messages = _encode(200, 10, caplog)
    assert any("encoding 200 classes x 10 templates" in m for m in messages), messages


def test_short_vocabulary_stays_silent(caplog: pytest.LogCaptureFixture) -> None:
    assert _encode(5, 2, caplog) == []
