"""``ovcore.hub``: the Hub folder layout written and read back, ``hf-hub:`` sources found offline in a Hugging Face
cache laid out on disk by the test, and the refusals (offline and missing, pickles, unknown methods, damaged files).

A toy method registered for the test stands in for the real ones (tests/hub covers SED, CLIP-ZSS and MaskCLIP).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from hub_cache import REV, offline_hub_cache, put_in_cache
from torch import nn

from ovcore import hub
from ovcore import method as ovmethod


class Toy(nn.Module):
    """A model with a tied weight and a non-contiguous buffer: what safetensors refuses unless the saver copes."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(6, width)
        self.head = nn.Linear(width, 6, bias=False)
        self.head.weight = self.embed.weight  # tied, as CLIP-style text towers sometimes are
        self.register_buffer("grid", torch.arange(12.0).view(3, 4).t())  # a transposed view

    def pretrained_info(self) -> tuple[str, str, dict[str, Any]]:
        return "toy", "toy_small", {"width": self.width}


def _create_toy(preset: str, checkpoint: Any = None, **overrides: Any) -> Toy:
    if checkpoint is None:
        return Toy(**overrides)
    weights = hub.load_pretrained(checkpoint, method="toy")
    model = Toy(**{**weights.config, **overrides})
    model.load_state_dict(weights.state_dict)
    return model


@pytest.fixture
def toy_method(monkeypatch):
    spec = ovmethod.MethodSpec("toy", "toy method", lambda p: ["toy_small"], _create_toy, small_preset="toy_small")
    ovmethod.list_methods()  # discover the installed methods first, so the toy one is only added
    monkeypatch.setitem(ovmethod._REGISTERED, "toy", spec)
    return spec


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return offline_hub_cache(tmp_path, monkeypatch)


def _saved_toy(tmp_path: Path, **kwargs: Any) -> tuple[Toy, Path]:
    torch.manual_seed(0)
    model = Toy()
    folder = hub.save_model(model, tmp_path / "toy", **kwargs)
    return model, folder


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- round trip


def test_save_writes_the_hub_layout(tmp_path, toy_method) -> None:
    model, folder = _saved_toy(tmp_path, metrics={"demo": 41.25, "voc": {"mIoU": 80.5, "hIoU": 70.0}})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["method"] == "toy" and config["preset"] == "toy_small" and config["config"] == {"width": 4}
    assert config["ovseg_version"] and config["metrics"]["demo"] == 41.25
    method, preset, cfg, state = hub.load_pretrained(folder)
    assert (method, preset, cfg) == ("toy", "toy_small", {"width": 4})
    torch.testing.assert_close(state["head.weight"], model.embed.weight.detach(), rtol=0, atol=0)
    torch.testing.assert_close(state["grid"], model.grid, rtol=0, atol=0)


def test_model_card_has_front_matter_and_metrics(tmp_path, toy_method) -> None:
    _, folder = _saved_toy(tmp_path, metrics={"A-150": 31.8, "voc": {"hIoU": 70.0}}, repo_id="me/toy")
    card = (folder / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: ovseg" in front and '"open-vocabulary-segmentation"' in front and '"toy"' in front
    assert "| A-150 | mIoU | 31.80 |" in card and "| voc | hIoU | 70.00 |" in card
    assert 'create_model("hf-hub:me/toy")' in card and "hf download me/toy" in card


def test_create_model_builds_from_a_folder(tmp_path, toy_method) -> None:
    model, folder = _saved_toy(tmp_path)
    assert hub.is_pretrained_source(folder) and hub.is_pretrained_source(str(folder))
    _assert_same(ovmethod.create_model(str(folder)), model)
    with pytest.raises(ValueError, match="already holds the weights"):
        ovmethod.create_model(str(folder), checkpoint=str(folder))


def test_hf_hub_source_is_found_offline_in_the_cache(tmp_path, toy_method, hub_cache) -> None:
    model, folder = _saved_toy(tmp_path)
    put_in_cache(folder, hub_cache, "org/toy")
    _assert_same(ovmethod.create_model("hf-hub:org/toy"), model)
    _assert_same(ovmethod.create_model(f"hf-hub:org/toy@{REV}"), model)  # a commit needs no ref
    assert hub.read_pretrained_config("hf-hub:org/toy")[:2] == ("toy", "toy_small")


# ---------------------------------------------------------------------------------------------------- refusals


def test_offline_and_missing_names_repo_cache_and_command(hub_cache) -> None:
    with pytest.raises(RuntimeError) as info:
        hub.load_pretrained("hf-hub:org/absent")
    message = str(info.value)
    assert "\n" not in message
    assert "'org/absent'" in message and str(hub_cache) in message and "`hf download org/absent`" in message
    assert "HF_HUB_OFFLINE=1" in message
    with pytest.raises(RuntimeError, match="hf download org/absent --revision v2"):
        hub.load_pretrained("hf-hub:org/absent@v2")


def test_unreachable_hub_is_a_runtime_error(monkeypatch, tmp_path) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def no_network(*args: Any, **kwargs: Any) -> str:
        raise LocalEntryNotFoundError("connection error")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(RuntimeError, match="could not be reached.*hf download org/x"):
        hub.load_pretrained("hf-hub:org/x")


def test_bad_hub_ids_are_value_errors() -> None:
    with pytest.raises(ValueError, match="invalid Hub repository id"):
        hub.load_pretrained("hf-hub:org/../x")


def test_pickled_weights_are_refused(tmp_path, toy_method, hub_cache) -> None:
    _, folder = _saved_toy(tmp_path)
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"w": [1.0]}, f)
    with pytest.raises(ValueError, match="pytorch_model.bin.*only safetensors"):
        hub.load_pretrained(folder)
    put_in_cache(folder, hub_cache, "org/pickled")
    with pytest.raises(ValueError, match="pytorch_model.bin.*only safetensors"):
        hub.load_pretrained("hf-hub:org/pickled")


def test_unknown_method_is_refused(tmp_path, toy_method) -> None:
    _, folder = _saved_toy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "method": "nope"}))
    with pytest.raises(ValueError, match="names method 'nope', which is not installed; installed methods: .*toy"):
        ovmethod.create_model(str(folder))
    with pytest.raises(ValueError, match="holds 'nope' weights.*not 'toy'"):
        hub.load_pretrained(folder, method="toy")


def test_corrupt_files_are_value_errors(tmp_path, toy_method) -> None:
    _, folder = _saved_toy(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a torn download
    with pytest.raises(ValueError, match="model.safetensors is not a readable safetensors file"):
        hub.load_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        hub.load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"preset": "x"}))
    with pytest.raises(ValueError, match="needs \"method\" and \"preset\""):
        hub.load_pretrained(folder)


def test_folder_without_the_layout(tmp_path) -> None:
    assert not hub.is_pretrained_source(tmp_path) and not hub.is_pretrained_source("sed_tiny")
    assert not hub.is_pretrained_source(None) and not hub.is_pretrained_source({"w": 1})
    with pytest.raises(ValueError, match="without config.json"):
        hub.load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"method": "toy", "preset": "toy_small", "config": {}}))
    with pytest.raises(ValueError, match="no model.safetensors"):
        hub.load_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is a file"):
        hub.save_pretrained({}, tmp_path / "config.json", method="toy", preset="p", config={})


def test_clip_download_hint_names_the_current_cli(tmp_path) -> None:
    """The hint for missing CLIP weights names ``hf download`` (huggingface_hub no longer ships huggingface-cli)."""
    from ovcore.clip._pretrained import _missing_message

    message = _missing_message("convnext_base_w_320", "laion_aesthetic_s13b_b82k", tmp_path, "are missing")
    assert "`hf download laion/CLIP-convnext_base_w_320-laion_aesthetic-s13B-b82K " in message
    assert "huggingface-cli" not in message
