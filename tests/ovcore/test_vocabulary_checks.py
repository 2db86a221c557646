"""Vocabulary checks (every class must be able to win) and progress reports of long text encodings."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch import nn

from ovcore.data import get_class_names, list_datasets
from ovcore.text import build_prompts, cached_encode_vocabulary, check_vocabulary, encode_vocabulary


class CountingTokenizer:
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return torch.arange(len(prompts))[:, None]


class ConstantTextModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.w.expand(tokens.shape[0], 4) + tokens.float()


# ------------------------------------------------------------------------------------------------ checks
@pytest.mark.parametrize(
    ("names", "duplicates"),
    [
        (["cat", "dog", "cat"], ["#0 'cat' = #2 'cat'"]),
        (["Cat", "dog", " cat "], ["#0 'Cat' = #2 ' cat '"]),
        (
            ["traffic light", "traffic  light", "TRAFFIC\tLIGHT", "sky"],
            ["#0 'traffic light' = #1 'traffic  light' = #2"],
        ),
        (["grass, lawn", "sky", "Grass,  lawn", "a", "A"], ["#0 'grass, lawn' = #2 'Grass,  lawn'", "#3 'a' = #4 'A'"]),
    ],
)
def test_duplicate_names_are_rejected_and_named(names: list[str], duplicates: list[str]) -> None:
    with pytest.raises(ValueError, match="duplicate class names") as info:
        check_vocabulary(names)
    for text in duplicates:
        assert text in str(info.value)


def test_duplicates_are_rejected_wherever_a_vocabulary_is_encoded(tmp_path) -> None:
    model, tok = ConstantTextModel(), CountingTokenizer()
    names = ["cat", "dog", "Cat"]
    with pytest.raises(ValueError, match=re.escape("#0 'cat' = #2 'Cat'")):
        encode_vocabulary(model, tok, names, ["a {}"])
    with pytest.raises(ValueError, match="duplicate"):
        build_prompts(names, ["a {}"])
    with pytest.raises(ValueError, match="duplicate"):
        cached_encode_vocabulary(model, tok, names, ["a {}"], model_name="m", weights_id="w", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ([], "vocabulary is empty"),
        (["cat", ""], r"#1 ''"),
        (["cat", "  \t"], r"#1"),
        (["cat", "dog, "], r"#1 'dog, '"),  # an empty synonym: the prompt "a photo of a ."
        (["cat", None], r"#1 None"),
        ("cat", "not the single string 'cat'"),
    ],
)
def test_empty_vocabularies_and_names_are_rejected(names, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_vocabulary(names)


def test_distinct_names_pass_unchanged() -> None:
    names = ["cat", "cats", "cat, kitten", "kitten, cat", "traffic light", "traffic-light"]
    assert check_vocabulary(tuple(names)) == names


@pytest.mark.parametrize("dataset", list_datasets())
def test_shipped_dataset_vocabularies_pass(dataset: str) -> None:
    names = get_class_names(dataset)
    assert check_vocabulary(names) == list(names)


# ------------------------------------------------------------------------------------------------ progress
def _encode(num_classes: int, caplog: pytest.LogCaptureFixture, **kwargs) -> list[str]:
    names = [f"class {i}" for i in range(num_classes)]
    with caplog.at_level(logging.INFO, logger="ovcore.text"):
        out = encode_vocabulary(ConstantTextModel(), CountingTokenizer(), names, ["a {}", "b {}"], **kwargs)
    assert out.shape == (num_classes, 2, 4)
    return [r.getMessage() for r in caplog.records if r.name.startswith("ovcore.text")]


def test_long_encodings_log_progress_when_stderr_is_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    # 2000 classes x 2 templates in batches of 100: 40 batches -> a start line and about ten progress lines
    lines = _encode(2000, caplog, batch_size=100)
    assert lines[0] == "encoding 2000 classes x 2 templates (40 batches) on cpu"
    assert 5 <= len(lines) <= 12 and lines[-1].startswith("encoded 2000/2000 classes (40/40 batches")
    assert re.fullmatch(r"encoded \d+/2000 classes \(4/40 batches, \d+ s\)", lines[1])


def test_short_encodings_and_progress_false_are_quiet(caplog: pytest.LogCaptureFixture) -> None:
    assert _encode(20, caplog, batch_size=8) == []  # 5 batches
    caplog.clear()
    assert _encode(2000, caplog, batch_size=100, progress=False) == []


def test_progress_true_draws_a_bar_on_stderr(capsys: pytest.CaptureFixture[str], caplog) -> None:
    assert _encode(30, caplog, batch_size=10, progress=True) == []
    assert "encoding vocabulary" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ users
def test_method_vocabularies_are_checked_before_anything_else() -> None:
    # Called unbound on stand-ins: the check runs first, so no model has to be built.
    from types import SimpleNamespace

    sed_model = pytest.importorskip("sed.model")
    fake_sed = SimpleNamespace(cfg=SimpleNamespace(num_templates=2), encoder=SimpleNamespace(embed_dim=4))
    with pytest.raises(ValueError, match=re.escape("#0 'sky' = #1 'Sky'")):
        sed_model.SED.set_vocabulary(fake_sed, ["sky", "Sky"])
    with pytest.raises(ValueError, match="duplicate"):
        sed_model.SED.set_text_embeddings(fake_sed, torch.zeros(2, 2, 4), ["a", "a"])
    clipzss_model = pytest.importorskip("clipzss.model")
    clipzss_segmenter = pytest.importorskip("clipzss.segmenter")
    for method in (clipzss_model.CLIPZSS.set_vocabulary, clipzss_segmenter.ZeroShotSegmenter.set_vocabulary):
        with pytest.raises(ValueError, match="duplicate"):
            method(SimpleNamespace(), ["road", "road "])
