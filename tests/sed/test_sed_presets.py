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


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presets registered in a test vanish after it (the registry is filled first, so nothing built-in is lost)."""
    from sed import _registry

    sed.list_presets()
    monkeypatch.setattr(_registry._PRESETS, "_entries", dict(_registry._PRESETS._entries))


def test_registry_entries_are_configs() -> None:
    from sed import _registry

    for name in sed.list_presets():
        cfg = _registry._PRESETS.get(name)()
        assert isinstance(cfg, sed.SEDConfig) and cfg == sed.load_config(name) == sed.get_preset_config(name)


@pytest.mark.usefixtures("scratch_registry")
def test_register_sed_registers_a_config_that_create_sed_builds() -> None:
    @sed.register_sed
    def sed_tiny_wide() -> sed.SEDConfig:
        """sed_tiny with 48 hidden channels."""
        return sed.load_config("sed_tiny", hidden_dim=48)

    assert isinstance(sed_tiny_wide(), sed.SEDConfig) and sed.is_preset("sed_tiny_wide")
    assert sed.get_preset_config("sed_tiny").hidden_dim != 48  # the preset's own value is what is checked below
    cfg = sed.get_preset_config("sed_tiny_wide", cer_topk=2)
    assert (cfg.name, cfg.description, cfg.hidden_dim, cfg.cer_topk) == (
        "sed_tiny_wide", "sed_tiny with 48 hidden channels.", 48, 2,
    )
    model = sed.create_sed("sed_tiny_wide", pretrained_clip=None)
    assert isinstance(model, sed.SED) and model.cfg.name == "sed_tiny_wide" and model.cfg.hidden_dim == 48
    assert model.decoder.conv1.out_channels == 48
    with pytest.raises(ValueError, match="already registered"):
        sed.register_sed(sed_tiny_wide)


@pytest.mark.usefixtures("scratch_registry")
def test_a_preset_function_returning_a_model_is_rejected() -> None:
    @sed.register_sed
    def sed_model_not_config() -> object:
        return sed.create_sed("sed_tiny", pretrained_clip=None)

    with pytest.raises(ValueError, match="returns an SEDConfig"):
        sed.create_sed("sed_model_not_config", pretrained_clip=None)
