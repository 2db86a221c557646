"""Prompt templates, synonym averaging, vocabulary encoding and its on-disk cache."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from fake_text import DIM as D
from fake_text import FakeTextModel, FakeTokenizer
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ovcore.text import (
    VocabularyCache,
    build_prompts,
    cached_encode_vocabulary,
    encode_vocabulary,
    get_templates,
    list_template_sets,
    split_synonyms,
    weights_id_of,
)

# --- templates -------------------------------------------------------------------------------------------------------


def test_imagenet_templates_are_seds_80_in_order():
    templates = get_templates("imagenet")
    assert len(templates) == 80
    assert templates[0] == "a bad photo of a {}."
    assert templates[1] == "a photo of many {}."
    assert templates[-1] == "a tattoo of the {}."
    assert len(set(templates)) == 80
    assert all(t.count("{}") == 1 for t in templates)


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        ("imagenet_select", 8, "itap of a {}.", "A photo of a {} in the scene"),
        ("single", 1, "A photo of a {} in the scene", "A photo of a {} in the scene"),
        ("zegclip", 15, "a photo of a {}.", "This is one {} in the scene."),
        ("zegclip_single", 1, "a photo of a {}", "a photo of a {}"),
    ],
)
def test_other_template_sets(name, count, first, last):
    templates = get_templates(name)
    assert (len(templates), templates[0], templates[-1]) == (count, first, last)


def test_get_templates_returns_a_copy_and_rejects_unknown_names():
    get_templates("imagenet").append("mutated {}")
    assert len(get_templates("imagenet")) == 80
    assert set(list_template_sets()) >= {"imagenet", "imagenet_select", "single", "zegclip"}
    with pytest.raises(ValueError, match="unknown template set"):
        get_templates("imagenet80")


# --- synonyms and prompts ----------------------------------------------------------------------------------------


def test_split_synonyms_uses_seds_comma_space_rule():
    assert split_synonyms("person, people, human") == ["person", "people", "human"]
    assert split_synonyms("wall") == ["wall"]
    assert split_synonyms("a,b") == ["a,b"]  # no space, no split
    with pytest.raises(ValueError):
        split_synonyms("")


def test_build_prompts_order_is_template_major_with_synonyms_inner():
    prompts, rows = build_prompts(["cat, kitty", "dog"], ["a {}.", "the {}"])
    assert prompts == ["a cat.", "a kitty.", "the cat", "the kitty", "a dog.", "the dog"]
    assert rows == [0, 0, 1, 1, 2, 3]


# --- encoding ----------------------------------------------------------------------------------------------------


def test_synonym_averaging_matches_hand_computation():
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    templates = ["a photo of a {}.", "the {} in the scene"]
    names = ["cat, kitty, kitten", "dog"]
    got = encode_vocabulary(model, tokenizer, names, templates, batch_size=3)
    assert got.shape == (2, 2, D)
    for t, name in enumerate(names):
        for p, template in enumerate(templates):
            normed = [F.normalize(model.embed(tokenizer, template.format(s)), dim=0) for s in name.split(", ")]
            expected = F.normalize(torch.stack(normed).mean(0), dim=0)
            torch.testing.assert_close(got[t, p], expected)


@given(batch_size=st.integers(1, 20), num_classes=st.integers(1, 6))
def test_result_does_not_depend_on_batch_size(batch_size, num_classes):
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    names = [f"class{i}, alias{i}" if i % 2 else f"class{i}" for i in range(num_classes)]
    templates = get_templates("imagenet_select")
    reference = encode_vocabulary(model, tokenizer, names, templates, batch_size=1000)
    got = encode_vocabulary(model, tokenizer, names, templates, batch_size=batch_size)
    torch.testing.assert_close(got, reference)
    torch.testing.assert_close(got.norm(dim=-1), torch.ones(num_classes, len(templates)))


def test_encodes_in_batches_without_grad_and_restores_mode():
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    model.head = nn.Dropout(0.5)
    model.train()
    model.head.eval()  # mixed modes (a frozen part in eval) must come back as they were
    seen = []
    encode_text = model.encode_text
    model.encode_text = lambda tokens: seen.append(model.training) or encode_text(tokens)
    out = encode_vocabulary(model, tokenizer, ["a", "b", "c"], ["x {}", "y {}"], batch_size=4, progress=True)
    assert model.calls == 2 and model.prompts == 6
    assert seen == [False, False]  # encoded in eval mode
    assert not out.requires_grad
    assert model.training and not model.head.training


def test_with_a_real_tiny_clip():
    from ovcore.clip import create_clip, get_tokenizer

    model = create_clip("ovcore-vit-tiny")
    tokenizer = get_tokenizer("ovcore-vit-tiny")
    templates = get_templates("zegclip")
    out = encode_vocabulary(model, tokenizer, ["sky", "tree, plant"], templates, batch_size=7)
    assert out.shape == (2, 15, 64) and out.dtype == torch.float32
    with torch.no_grad():
        direct = F.normalize(model.encode_text(tokenizer([t.format("sky") for t in templates])), dim=-1)
    torch.testing.assert_close(out[0], direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("names", "templates", "match"),
    [
        ([], ["a {}"], "vocabulary is empty"),
        (["cat"], [], "template list is empty"),
        (["cat"], ["no placeholder"], "placeholder"),
        (["cat", ""], ["a {}"], "non-empty"),
        ("cat", ["a {}"], "sequences"),
    ],
)
def test_bad_input_raises_value_error(names, templates, match):
    with pytest.raises(ValueError, match=match):
        encode_vocabulary(FakeTextModel(), FakeTokenizer(), names, templates)


# --- cache -------------------------------------------------------------------------------------------------------


def _cached(model, tokenizer, tmp_path, names, templates, model_name="fake", weights_id="tag:x"):
    return cached_encode_vocabulary(
        model, tokenizer, names, templates, model_name=model_name, weights_id=weights_id, cache_dir=tmp_path
    )


def test_cache_hit_avoids_re_encoding(tmp_path):
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    names = [f"class {i}" for i in range(30)]
    templates = get_templates("imagenet_select")
    first = _cached(model, tokenizer, tmp_path, names, templates)
    calls = model.calls
    assert calls > 0
    second = _cached(model, tokenizer, tmp_path, names, templates)
    assert model.calls == calls
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write leaves no temporary behind
    entry = torch.load(next(tmp_path.glob("*.pt")), weights_only=True)
    assert entry["embeddings"].shape == (30, 8, D)


@pytest.mark.parametrize(
    "change",
    [
        dict(names=["cat", "dogs"]),
        # (another order of the same names is served by the per-class cache: test_text_class_cache.py)
        dict(templates=["a {}", "an {}"]),
        dict(weights_id="tag:y"),
        dict(model_name="other"),
    ],
)
def test_cache_key_changes_and_misses(tmp_path, change):
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    base = dict(names=["cat", "dog"], templates=["a {}", "the {}"], model_name="fake", weights_id="tag:x")
    _cached(model, tokenizer, tmp_path, **base)
    calls = model.calls
    changed = {**base, **change}
    key = VocabularyCache.key(changed["model_name"], changed["weights_id"], changed["templates"], changed["names"])
    assert key != VocabularyCache.key(base["model_name"], base["weights_id"], base["templates"], base["names"])
    _cached(model, tokenizer, tmp_path, **changed)
    assert model.calls > calls


def test_corrupt_cache_file_is_recomputed(tmp_path):
    tokenizer, model = FakeTokenizer(), FakeTextModel()
    names, templates = ["cat"], ["a {}"]
    key = VocabularyCache.key("fake", "tag:x", templates, names)
    tmp_path.joinpath(f"{key}.pt").write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        out = _cached(model, tokenizer, tmp_path, names, templates)
    assert model.calls == 1 and out.shape == (1, 1, D)
    assert VocabularyCache(tmp_path).load(key) is not None  # rewritten


def test_weights_id_of(tmp_path):
    assert weights_id_of("openai") == "tag:openai"
    path = tmp_path / "w.pt"
    path.write_bytes(b"123")
    first = weights_id_of(path)
    assert first.startswith("file:") and str(path.resolve()) in first
    os.utime(path, ns=(1, 1))
    assert weights_id_of(path) != first
    with pytest.raises(ValueError):
        weights_id_of(None)
