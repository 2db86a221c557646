"""Per-class text-embedding cache (a new vocabulary encodes only its new names) and the truncated-context
``encode_text`` of open_clip CLIPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fake_text import DIM as D
from fake_text import FakeTextModel, FakeTokenizer

from ovcore.text import VocabularyCache, cached_encode_vocabulary, encode_vocabulary, get_templates
from ovcore.text._fast import encode_text, supports_truncation

TEMPLATES = ["a {}", "the {}", "a photo of a {}"]


def _cached(model, tokenizer, cache_dir, names):
    return cached_encode_vocabulary(
        model, tokenizer, names, TEMPLATES, model_name="fake", weights_id="tag:x", cache_dir=cache_dir
    )


def test_adding_one_class_encodes_one_class(tmp_path) -> None:
    model, tok = FakeTextModel(rows=256, seed=0, scaled=False), FakeTokenizer()
    first = _cached(model, tok, tmp_path, ["cat", "dog, puppy", "sky"])
    assert model.prompts == len(TEMPLATES) * 4  # "dog, puppy" has two synonyms
    model.prompts = 0
    grown = _cached(model, tok, tmp_path, ["cat", "dog, puppy", "sky", "tree"])
    assert model.prompts == len(TEMPLATES)  # only "tree"
    torch.testing.assert_close(grown[:3], first, rtol=0, atol=0)
    torch.testing.assert_close(grown[3], encode_vocabulary(model, tok, ["tree"], TEMPLATES)[0])


def test_reordered_or_partial_vocabularies_encode_nothing(tmp_path) -> None:
    model, tok = FakeTextModel(rows=256, seed=0, scaled=False), FakeTokenizer()
    full = _cached(model, tok, tmp_path, ["cat", "dog", "sky"])
    model.prompts = 0
    out = _cached(model, tok, tmp_path, ["sky", "cat"])
    assert model.prompts == 0
    torch.testing.assert_close(out, full[[2, 0]], rtol=0, atol=0)
    # the reordered vocabulary got its own whole-vocabulary entry (a one-file hit next time)
    assert VocabularyCache(tmp_path).load(VocabularyCache.key("fake", "tag:x", TEMPLATES, ["sky", "cat"])) is not None


def test_a_corrupt_class_entry_is_re_encoded(tmp_path) -> None:
    model, tok = FakeTextModel(rows=256, seed=0, scaled=False), FakeTokenizer()
    _cached(model, tok, tmp_path, ["cat", "dog"])
    key = VocabularyCache.key("fake", "tag:x", TEMPLATES, ["dog"])
    (tmp_path / "classes" / f"{key}.pt").write_bytes(b"torn")
    model.prompts = 0
    with pytest.warns(UserWarning, match="unreadable"):
        out = _cached(model, tok, tmp_path, ["dog", "cat"])
    assert model.prompts == len(TEMPLATES) and out.shape == (2, len(TEMPLATES), D)


def test_truncated_context_equals_encode_text() -> None:
    from ovcore.clip import create_clip, get_tokenizer

    model = create_clip("ovcore-vit-tiny").eval()
    tokenizer = get_tokenizer("ovcore-vit-tiny")
    assert supports_truncation(model)
    prompts = [t.format(n) for t in get_templates("zegclip")[:4] for n in ("sky", "a very long class name of things")]
    tokens = tokenizer(prompts)
    with torch.no_grad():
        fast, full = encode_text(model, tokens), model.encode_text(tokens)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        out = encode_vocabulary(model, tokenizer, ["sky"], get_templates("zegclip"))
        direct = F.normalize(model.encode_text(tokenizer([t.format("sky") for t in get_templates("zegclip")])), dim=-1)
    torch.testing.assert_close(out[0], direct, rtol=1e-5, atol=1e-5)


def test_models_without_a_causal_open_clip_text_tower_use_their_own_encode_text() -> None:
    model = FakeTextModel(rows=256, seed=0, scaled=False)
    assert not supports_truncation(model)
    tokens = torch.tensor([[1], [2]])
    torch.testing.assert_close(encode_text(model, tokens), model.table[[1, 2]])
