"""CLIP-ZSS presets are data: JSON files with ``base`` overlays, one registry shape with SED and MaskCLIP.

``golden_presets.json`` holds ``config_to_dict`` of every preset as the earlier Python presets built them, so moving
the presets to JSON changed no value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import clipzss
from clipzss import _registry
from clipzss.config import config_to_dict
from clipzss.presets import CONFIG_DIR, DEMO_SEEN, list_config_names, load_config, preset_description
from ovcore.configs import load_json_config, merge_overrides

GOLDEN = Path(__file__).with_name("golden_presets.json")
PAPER_BASE = "clipzss_swin_b_upernet"
TINY_BASE = "clipzss_tiny_convnext_segformer"


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Presets registered in a test vanish after it (the registry is filled first, so nothing built-in is lost)."""
    clipzss.list_presets()
    monkeypatch.setattr(_registry._PRESETS, "_entries", dict(_registry._PRESETS._entries))
    yield


def test_every_preset_equals_the_earlier_python_preset() -> None:
    golden = json.loads(GOLDEN.read_text())
    assert clipzss.list_presets() == list_config_names() == sorted(golden)
    for name, expected in golden.items():
        assert config_to_dict(clipzss.get_preset_config(name)) == expected, name


def test_every_file_has_a_description_that_documents_its_entry() -> None:
    for name in clipzss.list_presets():
        assert preset_description(name)
        assert _registry._PRESETS.get(name).__doc__ == preset_description(name)


def test_variants_are_short_overlays_of_two_bases() -> None:
    for name in list_config_names():
        raw = json.loads((CONFIG_DIR / f"{name}.json").read_text())
        if name in (PAPER_BASE, TINY_BASE):
            assert "base" not in raw
            continue
        assert "base" in raw and len((CONFIG_DIR / f"{name}.json").read_text().splitlines()) <= 10, name
        root = name
        while "base" in json.loads((CONFIG_DIR / f"{root}.json").read_text()):
            root = json.loads((CONFIG_DIR / f"{root}.json").read_text())["base"]
        assert root == (TINY_BASE if "_tiny_" in name else PAPER_BASE), name


def test_a_segformer_overlay_changes_only_the_head() -> None:
    base = config_to_dict(load_config(PAPER_BASE))
    variant = config_to_dict(load_config("clipzss_swin_b_segformer"))
    assert sorted(k for k in base if base[k] != variant[k]) == ["head_lr_mult", "student"]
    changed = sorted(k for k in base["student"] if base["student"][k] != variant["student"][k])
    assert changed == ["head", "head_channels"]


def test_convnext_overlay_replaces_the_swin_backbone_kwargs() -> None:
    # mmseg's "_delete_" marker: merging would carry Swin's img_size into ConvNeXt's keyword arguments.
    assert load_config("clipzss_convnext_b_upernet").student.backbone_kwargs == {"drop_path_rate": 0.4}
    assert load_config("clipzss_convnext_t_upernet").student.backbone_kwargs == {"drop_path_rate": 0.3}


def test_delete_marker_rules() -> None:
    base = {"a": {"x": 1, "y": 2}, "b": 3}
    assert merge_overrides(base, {"a": {"y": 5}}) == {"a": {"x": 1, "y": 5}, "b": 3}
    assert merge_overrides(base, {"a": {"_delete_": True, "y": 5}}) == {"a": {"y": 5}, "b": 3}
    assert merge_overrides(base, {"c": {"_delete_": False, "z": {"_delete_": True}}}) == {**base, "c": {"z": {}}}
    with pytest.raises(ValueError, match="'_delete_' must be true or false"):
        merge_overrides(base, {"a": {"_delete_": "yes"}})


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text('{"student": {"backbone_kwargs": {"img_size": 64}}}')
    (tmp_path / "child.json").write_text('{"base": "base", "student": {"backbone_kwargs": {"_delete_": 1}}}')
    with pytest.raises(ValueError, match=r"child\.json.*'_delete_' must be true or false"):
        load_json_config(tmp_path, "child")


def test_tiny_presets_use_the_demo_vocabulary() -> None:
    from ovcore.benchmarks import DEMO_SEEN as BENCH_SEEN
    from ovcore.data import DEMO_CLASSES

    cfg = clipzss.get_preset_config(TINY_BASE)
    assert cfg.class_names == list(DEMO_CLASSES) and cfg.seen_classes == DEMO_SEEN == list(BENCH_SEEN)


def test_unknown_preset_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="clipzss_tiny_swin_upernet"):
        clipzss.get_preset_config("clipzss_nope")
    with pytest.raises(ValueError, match="clipzss_tiny_swin_upernet"):
        clipzss.create_clipzss("clipzss_nope")


@pytest.mark.usefixtures("scratch_registry")
def test_a_preset_registered_in_python_returns_a_config_and_builds() -> None:
    @clipzss.register_preset
    def clipzss_tiny_user() -> clipzss.CLIPZSSConfig:
        return clipzss.get_preset_config(TINY_BASE, crop_size=64, student__head_channels=16)

    assert "clipzss_tiny_user" in clipzss.list_presets() and clipzss.is_preset("clipzss_tiny_user")
    cfg = clipzss.get_preset_config("clipzss_tiny_user")
    assert isinstance(cfg, clipzss.CLIPZSSConfig) and cfg.student.head_channels == 16
    torch.manual_seed(0)
    model = clipzss.create_clipzss("clipzss_tiny_user")
    assert model.preset == "clipzss_tiny_user" and model.cfg.crop_size == 64


@pytest.mark.usefixtures("scratch_registry")
def test_a_preset_function_must_return_a_config() -> None:
    @clipzss.register_preset
    def clipzss_returns_a_model() -> object:
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="returns a CLIPZSSConfig"):
        clipzss.get_preset_config("clipzss_returns_a_model")
