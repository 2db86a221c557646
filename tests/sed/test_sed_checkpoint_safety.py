"""The SED checkpoint reader runs no code from the file (create_sed, sed-eval/-predict/-convert, --init-checkpoint).

Each gadget, if unpickled, creates ``marker``. Before the fixed allowlist, any callable under ``numpy`` was admitted,
so the two numpy gadgets ran.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pickle_gadgets import Gadget, gadgets

import sed
from sed.convert import main, read_checkpoint


def _gadget(kind: str, marker: Path) -> Gadget:
    return gadgets(marker)[kind]


KINDS = ["numpy exec", "numpy call", "os.system", "builtins.exec"]


def _detectron2_style(gadget: Any) -> dict[str, Any]:
    stem = "sem_seg_head.predictor.clip_model.visual.trunk.stem.0.weight"
    return {"model": {stem: np.zeros((128, 3, 4, 4), np.float32), "nested": {"x": gadget}}, "iteration": 5}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker.txt"


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
def test_read_checkpoint_refuses_gadgets(tmp_path: Path, marker: Path, kind: str, zipped: bool) -> None:
    path = tmp_path / "model_final.pth"
    torch.save(_detectron2_style(_gadget(kind, marker)), path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(ValueError, match="refusing to load SED checkpoint") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "re-save" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["numpy call", "builtins.exec"])
def test_detectron2_pickle_refuses_gadgets(tmp_path: Path, marker: Path, kind: str) -> None:
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps(_detectron2_style(_gadget(kind, marker)), protocol=2))
    with pytest.raises(ValueError, match="refusing") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_every_entry_point_refuses(tmp_path: Path, marker: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model_final.pth"
    torch.save(_detectron2_style(_gadget("numpy call", marker)), path)
    with pytest.raises(ValueError, match="refusing"):
        sed.create_sed("sed_tiny", pretrained_clip=None, checkpoint=path)
    assert main([str(path), str(tmp_path / "out.safetensors")]) != 0  # sed-convert reports the error, exits non-zero
    assert "refusing" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_detectron2_numpy_checkpoints_still_load(tmp_path: Path) -> None:
    state = _detectron2_style(None)
    state["model"]["nested"] = np.float32(1.5)
    path = tmp_path / "model_final.pth"
    torch.save(state, path)
    loaded = read_checkpoint(path)
    assert loaded["model"][next(iter(state["model"]))].shape == (128, 3, 4, 4)
    assert loaded["iteration"] == 5 and loaded["model"]["nested"] == 1.5
    pkl = tmp_path / "model_final.pkl"
    pkl.write_bytes(pickle.dumps(state, protocol=2))
    assert read_checkpoint(pkl)["model"][next(iter(state["model"]))].dtype == np.float32
