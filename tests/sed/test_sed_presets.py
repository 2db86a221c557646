"""SED presets are data: one JSON file each, `_fast` variants are overlays of their base."""

from __future__ import annotations

import dataclasses

import pytest

import sed
from sed.config import CONFIG_DIR, list_config_names


def test_every_config_file_is_a_registered_preset_with_a_description() -> None:
    assert sed.list_presets() == list_config_names()
    for name in sed.list_presets():
        cfg = sed.load_config(name)
        assert cfg.name == name and cfg.description


@pytest.mark.parametrize("size", ["b", "l"])
def test_fast_variant_differs_from_its_base_only_in_cer_and_paper_figures(size: str) -> None:
    base = dataclasses.asdict(sed.load_config(f"sed_convnext_{size}_768"))
    fast = dataclasses.asdict(sed.load_config(f"sed_convnext_{size}_768_fast"))
    changed = sorted(k for k in base if base[k] != fast[k])
    assert changed == ["cer_topk", "description", "extra", "name"]
    assert base["cer_topk"] is None and fast["cer_topk"] == 8
    # The overlay restates only what differs: the file is a few lines, not a copy of its base.
    assert '"base": "sed_convnext_' in (CONFIG_DIR / f"sed_convnext_{size}_768_fast.json").read_text()


def test_unknown_preset_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="sed_tiny"):
        sed.create_sed("sed_nope")
