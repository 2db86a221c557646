"""ovcore.files: atomic writes and strict JSON."""

from __future__ import annotations

import json
import math
import os
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


def test_format_bytes_and_free_space(tmp_path: Path) -> None:
    from ovcore.files import format_bytes, free_space

    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 2**30, 3 * 2**50)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3072.0 TiB"
    ]
    free = free_space(tmp_path / "not" / "yet" / "made")  # measured on the nearest existing folder
    assert isinstance(free, int) and free >= 0


def test_failed_writes_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import ovcore.files as files

    def failing(code: int):
        def write(tmp: Path) -> None:
            tmp.write_text("half")
            raise OSError(code, os.strerror(code))

        return write

    # A permission error stays a permission error even on a nearly full disk.
    monkeypatch.setattr(files, "free_space", lambda path: 1024)
    with pytest.raises(files.WriteError, match="permission denied") as info:
        atomic_write(tmp_path / "a.bin", failing(errno.EACCES))
    assert info.value.errno == errno.EACCES and info.value.filename == str(tmp_path / "a.bin")
    with pytest.raises(files.WriteError, match=r"no space left on the device \(1.0 KiB free in"):
        atomic_write(tmp_path / "a.bin", failing(errno.EIO))  # an I/O error on a nearly full disk
    monkeypatch.setattr(files, "free_space", lambda path: 2**40)
    with pytest.raises(files.WriteError, match=r"Input/output error \(1.0 TiB free in .*\); check the disk"):
        atomic_write(tmp_path / "a.bin", failing(errno.EIO))
    assert list(tmp_path.iterdir()) == []  # no temporary left behind
