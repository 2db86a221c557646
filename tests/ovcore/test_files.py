"""ovcore.files: atomic writes and strict JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ovcore.files import atomic_write, atomic_write_text, json_safe, write_json


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]  # no temporary file left behind


def test_atomic_write_durable_replaces(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "a.bin", lambda tmp: tmp.write_bytes(b"\x01\x02"), durable=True)
    assert path.read_bytes() == b"\x01\x02"


def test_write_json_is_strict_json(tmp_path: Path) -> None:
    data = {"miou": math.nan, "per_class": [1.0, math.inf], ("a", 1): -math.inf, 3: Path("x"), "ok": 2.5}
    text = write_json(tmp_path / "r.json", data).read_text()
    loaded = json.loads(text)  # json.loads accepts NaN; the check below makes sure none was written
    assert "NaN" not in text and "Infinity" not in text
    assert loaded == {"miou": None, "per_class": [1.0, None], "('a', 1)": None, "3": "x", "ok": 2.5}


def test_json_safe_keeps_json_keys_and_values() -> None:
    value = {1: (0.5, math.nan), "b": {"c": math.inf}}
    assert json_safe(value) == {1: [0.5, None], "b": {"c": None}}
