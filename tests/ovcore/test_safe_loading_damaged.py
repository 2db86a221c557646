"""Damaged files (empty, cut short, random bytes, another format) are reported as damaged, never as unsafe.

``load_torch_file`` raises :class:`DamagedFileError` (a ``ValueError``) naming the file and saying to re-download or
re-save it; a refusal (:class:`UnsafeFileError`) stays reserved for files whose pickle names a forbidden global.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ovcore.safe_load import DamagedFileError, UnsafeFileError, load_torch_file
from ovcore.train.checkpoint import UNREADABLE_ERRORS, load_checkpoint

_STATE = {"model": {"w": torch.arange(96, dtype=torch.float32).reshape(12, 8), "b": torch.zeros(8)}, "step": 3}


def _saved(zip_format: bool) -> bytes:
    buffer = io.BytesIO()
    torch.save(_STATE, buffer, _use_new_zipfile_serialization=zip_format)
    return buffer.getvalue()


def _random(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


DAMAGED: dict[str, bytes] = {
    "empty": b"",
    "text": b"hello, this is not a checkpoint\n",
    "plain_pickle": pickle.dumps({"w": [1.0, 2.0]}, protocol=4),
    "zip_half": _saved(True)[: len(_saved(True)) // 2],
    "zip_minus_tail": _saved(True)[:-10],
    "zip_head": _saved(True)[:100],
    "legacy_half": _saved(False)[: len(_saved(False)) // 2],
    "legacy_head": _saved(False)[:30],
    **{f"random_{seed}_{size}": _random(seed, size) for seed in range(4) for size in (1, 64, 4096)},
}


def _assert_damaged(info: pytest.ExceptionInfo[BaseException], path: Path) -> None:
    err = info.value
    assert isinstance(err, DamagedFileError) and isinstance(err, ValueError)
    assert not isinstance(err, UnsafeFileError)
    message = str(err)
    assert str(path) in message
    assert "not a readable torch file" in message and "re-download or re-save" in message
    assert "refusing" not in message and "weights_only" not in message


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_file_is_a_clear_value_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(DAMAGED[kind])
    with pytest.raises(DamagedFileError) as info:
        load_torch_file(path)
    _assert_damaged(info, path)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_every_truncation_is_damage_not_a_refusal(tmp_path: Path, zip_format: bool) -> None:
    # Cutting a legacy file inside a global's name makes torch report "Unsupported global": still damage.
    data = _saved(zip_format)
    path = tmp_path / "cut.pt"
    for end in range(0, len(data), max(1, len(data) // 60)):
        path.write_bytes(data[:end])
        with pytest.raises(DamagedFileError) as info:
            load_torch_file(path)
        _assert_damaged(info, path)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_intact_files_still_load(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "ok.pt"
    path.write_bytes(_saved(zip_format))
    out = load_torch_file(path)
    assert torch.equal(out["model"]["w"], _STATE["model"]["w"]) and out["step"] == 3


class _Gadget:
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return os.getcwd, ()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_an_unsafe_file_is_still_refused(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "unsafe.pt"
    torch.save({"w": torch.zeros(2), "x": _Gadget()}, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeFileError, match="refusing") as info:
        load_torch_file(path)
    assert not isinstance(info.value, DamagedFileError) and "getcwd" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_environment_errors_are_not_called_damage(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    path.write_bytes(_saved(True))
    with pytest.raises(RuntimeError) as info:
        load_torch_file(path, map_location="cuda")
    assert not isinstance(info.value, DamagedFileError)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "the file is empty or cut short"),
        ("zip_head", "the file is truncated or corrupted"),
        ("random_0_4096", "the file is truncated or corrupted, or not a torch file"),
        ("legacy_half", "the file is truncated or corrupted, or not a torch file"),
    ],
)
def test_load_checkpoint_keeps_its_messages(tmp_path: Path, kind: str, reason: str) -> None:
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(DAMAGED[kind])
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path} is not a readable checkpoint: {reason}")
    assert isinstance(info.value.__cause__, DamagedFileError)


def test_damaged_files_are_among_the_unreadable_errors() -> None:
    # Callers that add their option name to the message (sed's --checkpoint, sed-convert's INPUT) catch these.
    assert issubclass(DamagedFileError, UNREADABLE_ERRORS)
