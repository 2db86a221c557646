"""ovcore.registry.PresetRegistry: the timm-style registry behind sed and clipzss presets."""

from __future__ import annotations

import pytest

from ovcore.registry import PresetRegistry


def test_register_list_get_and_unknown_names() -> None:
    calls = []
    reg: PresetRegistry = PresetRegistry("toy preset", populate=lambda: calls.append(1))

    @reg.register
    def toy_b():
        return "b"

    @reg.register
    def toy_a():
        return "a"

    assert reg.names() == ["toy_a", "toy_b"]
    assert reg.names("*_b") == ["toy_b"]
    assert "toy_a" in reg and "toy_c" not in reg
    assert reg.get("toy_b")() == "b"
    with pytest.raises(ValueError, match=r"unknown toy preset 'toy_c'; available presets: \['toy_a', 'toy_b'\]"):
        reg.get("toy_c")
    assert calls  # lookups populate first


def test_populate_fills_the_registry_lazily() -> None:
    # As sed does: the presets module registers on import, and the registry imports it at the first lookup.
    def import_presets() -> None:
        if "late" not in reg._entries:

            def late():
                return "late"

            reg.register(late)

    reg: PresetRegistry = PresetRegistry("toy preset", populate=import_presets)
    assert reg.names() == ["late"]
    assert reg.get("late")() == "late"


def test_duplicates_raise_or_overwrite() -> None:
    strict: PresetRegistry = PresetRegistry("toy preset")
    loose: PresetRegistry = PresetRegistry("toy preset", allow_overwrite=True)

    def toy():
        return 1

    strict.register(toy)
    with pytest.raises(ValueError, match="already registered"):
        strict.register(toy)
    loose.register(toy)

    def toy():  # noqa: F811 - a second function of the same name, as a plugin would define
        return 2

    with pytest.warns(UserWarning, match="overwriting toy preset 'toy'"):
        loose.register(toy)
    assert loose.get("toy")() == 2
