"""MaskCLIP through the method contract: entry point, presets, weights and evaluation on the demo data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import maskclip
from maskclip.config import list_config_names, load_config
from ovcore.clip import clip_model_config, create_clip
from ovcore.method import SegmentationModel, create_model, find_method, get_method, list_methods


def test_entry_point_is_discovered() -> None:
    assert "maskclip" in list_methods()
    spec = get_method("maskclip")
    assert spec.trainable is False and spec.small_preset == "maskclip_vit_tiny"
    assert find_method("maskclip_vit_b16") is spec
    assert set(spec.list_presets("maskclip_*")) == {
        "maskclip_vit_b16", "maskclip_vit_l14", "maskclip_convnext_b", "maskclip_vit_tiny", "maskclip_convnext_tiny",
    }


def test_create_model_builds_the_small_preset() -> None:
    model = create_model("maskclip_vit_tiny")
    assert isinstance(model, maskclip.MaskCLIP) and isinstance(model, SegmentationModel)
    assert model.backbone == "vit" and model.cfg.clip_pretrained is None


def test_presets_name_their_clip_weights() -> None:
    expected = {
        "maskclip_vit_b16": ("ViT-B-16", "openai"),
        "maskclip_vit_l14": ("ViT-L-14", "openai"),
        "maskclip_convnext_b": ("convnext_base_w_320", "laion_aesthetic_s13b_b82k"),
        "maskclip_vit_tiny": ("ovcore-vit-tiny", None),
        "maskclip_convnext_tiny": ("ovcore-convnext-tiny", None),
    }
    assert set(list_config_names()) == set(expected)
    for name, (model, tag) in expected.items():
        cfg = load_config(name)
        assert (cfg.clip_model, cfg.clip_pretrained, cfg.name) == (model, tag, name)
        clip_model_config(cfg.clip_model)  # a known open_clip architecture
    assert load_config("maskclip_vit_l14").window_size == 224  # inherited from its base


def test_unknown_preset_and_override_are_rejected() -> None:
    with pytest.raises(ValueError, match="available presets"):
        maskclip.create_maskclip("maskclip_vit_h14")
    with pytest.raises(ValueError, match="unknown MaskCLIP config fields"):
        maskclip.create_maskclip("maskclip_vit_tiny", window=64)


def test_missing_pretrained_tag_fails_offline_naming_the_tag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"'ViT-B-16' with pretrained tag 'openai'"):
        maskclip.create_maskclip("maskclip_vit_b16")
    with pytest.raises(RuntimeError, match="pretrained tag 'laion_aesthetic_s13b_b82k'"):
        create_model("maskclip_convnext_b")


def test_checkpoint_state_dict_gives_the_clip_weights() -> None:
    torch.manual_seed(1)
    weights = create_clip("ovcore-vit-tiny").state_dict()
    model = create_model("maskclip_vit_tiny", checkpoint=weights)
    torch.testing.assert_close(model.clip.visual.proj, weights["visual.proj"])
    with pytest.raises(ValueError, match="not both"):
        create_model("maskclip_vit_tiny", checkpoint=weights, pretrained=None)


def test_evaluate_on_the_demo_data(tmp_path: Path) -> None:
    model = maskclip.create_maskclip("maskclip_vit_tiny", pretrained=None, test_short_side=64, window_size=None)
    model.set_vocabulary(["cat", "dog"])
    results = maskclip.evaluate(model, "demo", root=tmp_path, max_images=3, batch_size=2, warmup=0,
                                output_json=tmp_path / "demo.json")
    assert results["num_images"] == 3 and results["num_classes"] == 8 and results["vocabulary_size"] == 8
    assert 0.0 <= results["mIoU"] <= 100.0 and results["iou_convention"] == "mmseg"
    assert results["preset"] == "maskclip_vit_tiny" and (tmp_path / "demo.json").is_file()
    assert model.class_names == ["cat", "dog"]  # restored after the run


def test_evaluate_rejects_a_bad_image_count(tmp_path: Path) -> None:
    model = create_model("maskclip_vit_tiny")
    with pytest.raises(ValueError, match="max_images"):
        maskclip.evaluate(model, "demo", root=tmp_path, max_images=0)


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presets registered in a test vanish after it (the registry is filled first, so nothing built-in is lost)."""
    from maskclip import _registry

    maskclip.list_presets()
    monkeypatch.setattr(_registry._PRESETS, "_entries", dict(_registry._PRESETS._entries))


def test_registry_entries_are_configs() -> None:
    from maskclip import _registry

    for name in maskclip.list_presets():
        cfg = _registry._PRESETS.get(name)()
        assert isinstance(cfg, maskclip.MaskCLIPConfig) and cfg == load_config(name) == maskclip.get_preset_config(name)


@pytest.mark.usefixtures("scratch_registry")
def test_register_maskclip_registers_a_config_that_create_maskclip_builds() -> None:
    @maskclip.register_maskclip
    def maskclip_vit_tiny_whole() -> maskclip.MaskCLIPConfig:
        """The tiny ViT preset on the whole image."""
        return load_config("maskclip_vit_tiny", window_size=None)

    cfg = maskclip.get_preset_config("maskclip_vit_tiny_whole")
    assert (cfg.name, cfg.description, cfg.window_size) == (
        "maskclip_vit_tiny_whole", "The tiny ViT preset on the whole image.", None,
    )
    model = maskclip.create_maskclip("maskclip_vit_tiny_whole", pretrained=None)
    assert isinstance(model, maskclip.MaskCLIP) and model.cfg.name == "maskclip_vit_tiny_whole"
    assert create_model("maskclip_vit_tiny_whole").cfg.window_size is None  # found through the method contract
