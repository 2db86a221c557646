"""The preset plumbing every method package shares: ``PresetRegistry.add_configs`` / ``config`` / ``description``
and ``ovcore.configs.PresetConfig`` (``replace``, ``to_dict``, ``named``, ``from_json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ovcore.configs import PresetConfig
from ovcore.registry import PresetRegistry


@dataclass
class ToyConfig(PresetConfig):
    config_kind: ClassVar[str] = "Toy"

    name: str = "toy"
    description: str = ""
    width: int = 4
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


def _write(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_replace_checks_names_and_values() -> None:
    cfg = ToyConfig().replace(width=8)
    assert cfg.width == 8 and cfg.to_dict() == {"name": "toy", "description": "", "width": 8, "extra": {}}
    with pytest.raises(ValueError, match=r"unknown Toy config fields \['depth'\]; known: \["):
        cfg.replace(depth=2)
    with pytest.raises(ValueError, match="width must be >= 1"):
        cfg.replace(width=0)


def test_named_keeps_the_config_description_when_none_is_given() -> None:
    cfg = ToyConfig(description="from the file")
    assert cfg.named("toy_b", "").description == "from the file"
    assert cfg.named("toy_b", "from the docstring") == ToyConfig("toy_b", "from the docstring")


def test_from_json_resolves_bases_and_names_the_config(tmp_path: Path) -> None:
    _write(tmp_path, "toy_base", {"description": "base", "width": 2, "extra": {"a": 1}})
    _write(tmp_path, "toy_wide", {"base": "toy_base", "width": 6})
    cfg = ToyConfig.from_json(tmp_path, "toy_wide", extra={"b": 2})
    assert cfg == ToyConfig("toy_wide", "base", 6, {"b": 2})
    with pytest.raises(ValueError, match="no config 'absent'"):
        ToyConfig.from_json(tmp_path, "absent")


def test_add_configs_registers_one_entry_per_name(tmp_path: Path) -> None:
    _write(tmp_path, "toy_a", {"description": "first toy\nmore text", "width": 2})
    _write(tmp_path, "toy_b", {"width": 3})
    reg: PresetRegistry = PresetRegistry("toy preset")
    reg.add_configs(["toy_a", "toy_b"], lambda n: ToyConfig.from_json(tmp_path, n))
    assert reg.names() == ["toy_a", "toy_b"] and reg.get("toy_a").__name__ == "toy_a"
    assert reg.description("toy_a") == "first toy" and reg.description("toy_b") == ""
    assert reg.config("toy_b", ToyConfig, builder="create_toy").width == 3
    reg.add_configs(["toy_c"], lambda n: ToyConfig(n), describe=lambda n: f"described {n}")
    assert reg.description("toy_c") == "described toy_c"


def test_config_rejects_an_entry_of_another_type() -> None:
    reg: PresetRegistry = PresetRegistry("toy preset")
    reg.add("toy_bad", lambda: {"width": 2})
    with pytest.raises(ValueError, match=r"'toy_bad' returned dict: a preset function returns a ToyConfig \(make"):
        reg.config("toy_bad", ToyConfig, builder="make")
    with pytest.raises(ValueError, match="unknown toy preset 'toy_c'"):
        reg.config("toy_c", ToyConfig, builder="make")


def test_for_weights_builds_the_saved_config_unless_another_preset_is_named() -> None:
    class Saved:
        preset, config = "toy_saved", {"name": "toy_saved", "width": 5}

    def get_preset_config(name: str, **overrides: Any) -> ToyConfig:
        return ToyConfig(name, width=7).replace(**overrides)

    assert ToyConfig.for_weights(Saved(), None, get_preset_config, width=6) == ToyConfig("toy_saved", width=6)
    assert ToyConfig.for_weights(Saved(), "toy_saved", get_preset_config) == ToyConfig("toy_saved", width=5)
    assert ToyConfig.for_weights(Saved(), "toy_other", get_preset_config) == ToyConfig("toy_other", width=7)
