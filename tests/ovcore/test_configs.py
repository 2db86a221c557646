"""Configs as data: JSON overlays with a named base (ovcore.configs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovcore.configs import list_config_names, load_json_config, merge_overrides


def _write(folder: Path, name: str, data: object) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_overlay_replaces_scalars_and_lists_and_merges_dicts(tmp_path: Path) -> None:
    _write(tmp_path, "base", {"a": 1, "dims": [1, 2, 3], "extra": {"x": 1, "y": 2}})
    _write(tmp_path, "child", {"base": "base", "a": 5, "dims": [9], "extra": {"y": 7}})
    assert load_json_config(tmp_path, "child") == {"a": 5, "dims": [9], "extra": {"x": 1, "y": 7}}
    assert load_json_config(tmp_path, "base") == {"a": 1, "dims": [1, 2, 3], "extra": {"x": 1, "y": 2}}


def test_chains_of_bases_apply_from_the_root(tmp_path: Path) -> None:
    _write(tmp_path, "root", {"a": 1, "b": 1, "c": 1})
    _write(tmp_path, "mid", {"base": "root", "b": 2, "c": 2})
    _write(tmp_path, "leaf", {"base": "mid", "c": 3})
    assert load_json_config(tmp_path, "leaf") == {"a": 1, "b": 2, "c": 3}
    assert list_config_names(tmp_path) == ["leaf", "mid", "root"]


def test_unknown_config_and_base_name_the_folder_and_the_choices(tmp_path: Path) -> None:
    _write(tmp_path, "child", {"base": "missing"})
    with pytest.raises(ValueError, match=r"no config 'nope' .*available: \['child'\]"):
        load_json_config(tmp_path, "nope")
    with pytest.raises(ValueError, match=r"base config 'missing' \(named by 'child'\)"):
        load_json_config(tmp_path, "child")


def test_cycles_and_bad_files_are_errors(tmp_path: Path) -> None:
    _write(tmp_path, "a", {"base": "b"})
    _write(tmp_path, "b", {"base": "a"})
    with pytest.raises(ValueError, match="cycle of bases: a -> b -> a"):
        load_json_config(tmp_path, "a")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*cannot be read as JSON"):
        load_json_config(tmp_path, "broken")
    _write(tmp_path, "alist", [1, 2])
    with pytest.raises(ValueError, match="must hold a JSON object"):
        load_json_config(tmp_path, "alist")
    _write(tmp_path, "badbase", {"base": 3})
    with pytest.raises(ValueError, match="must be a config name"):
        load_json_config(tmp_path, "badbase")


def test_merge_does_not_modify_its_inputs() -> None:
    base = {"extra": {"x": 1}}
    out = merge_overrides(base, {"extra": {"y": 2}})
    assert base == {"extra": {"x": 1}} and out == {"extra": {"x": 1, "y": 2}}
