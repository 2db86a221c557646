"""CLIP-ZSS class embeddings use ovcore's default progress: silent for short vocabularies, reported for long ones."""

from __future__ import annotations

import logging

import pytest
from fake_text import DIM, FakeTextModel, FakeTokenizer

from clipzss.text import class_embeddings


def _encode(num_classes: int, num_templates: int, caplog: pytest.LogCaptureFixture) -> list[str]:
    names = [f"class {i}" for i in range(num_classes)]
    templates = [f"template {j} {{}}" for j in range(num_templates)]
    with caplog.at_level(logging.INFO, logger="ovcore.text"):
        out = class_embeddings(FakeTextModel(rows=num_classes * num_templates), FakeTokenizer(), names, templates)
    assert out.shape == (num_classes, DIM)
    return [r.getMessage() for r in caplog.records if r.name.startswith("ovcore.text")]


def test_long_vocabulary_reports_progress(caplog: pytest.LogCaptureFixture) -> None:
    # 200 classes x 10 templates = 2000 prompts = 8 batches of 256: ovcore reports (log lines off a terminal).
    messages = _encode(200, 10, caplog)
    assert any("encoding 200 classes x 10 templates" in m for m in messages), messages


def test_short_vocabulary_stays_silent(caplog: pytest.LogCaptureFixture) -> None:
    assert _encode(5, 2, caplog) == []
