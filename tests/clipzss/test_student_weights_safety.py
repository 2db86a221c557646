"""A student backbone given as a local weights file is read by ovcore (no code from the file runs), not by timm.

timm gets the state dict (``pretrained_cfg_overlay=dict(state_dict=...)``) and still applies its own conversion;
a crafted file is a clear ``ValueError`` naming it, and nothing in it is executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import timm
import timm.models._builder
import torch
from safetensors.torch import save_file

from clipzss.config import StudentConfig
from clipzss.students import Student, create_backbone

BACKBONE = "resnet10t"


class _Gadget:
    """Pickles as ``exec(code)``; unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.code = f"__import__('pathlib').Path({str(marker)!r}).write_text('pwned')"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return exec, (self.code,)


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model(BACKBONE, pretrained=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def timm_never_reads_files(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("timm read the weights file itself")

    monkeypatch.setattr(timm.models._builder, "load_state_dict", refuse)


def _assert_same_weights(backbone: torch.nn.Module, source: dict[str, torch.Tensor]) -> None:
    state = backbone.state_dict()
    assert state and set(state) <= set(source)
    for name, value in state.items():
        assert torch.equal(value, source[name]), name


@pytest.mark.parametrize("layout", ["plain.pth", "wrapped.pth", "ddp.pt", "weights.safetensors"])
def test_legit_file_loads_the_same_weights(tmp_path: Path, source: dict[str, torch.Tensor], layout: str,
                                           timm_never_reads_files: None) -> None:
    path = tmp_path / layout
    if layout == "weights.safetensors":
        save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    elif layout == "wrapped.pth":
        torch.save({"state_dict": source, "epoch": 3}, path)
    elif layout == "ddp.pt":
        torch.save({f"module.{k}": v for k, v in source.items()}, path)
    else:
        torch.save(source, path)
    backbone = create_backbone(StudentConfig(backbone=BACKBONE, pretrained=str(path)))
    _assert_same_weights(backbone, source)
    assert "state_dict" not in (backbone.pretrained_cfg or {})  # no second copy of the weights kept alive


def test_student_with_a_local_file(tmp_path: Path, source: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(source, path)
    student = Student(StudentConfig(backbone=BACKBONE, pretrained=str(path), head="segformer", head_channels=8), 8)
    _assert_same_weights(student.backbone, source)


def test_crafted_file_is_refused_and_never_runs(tmp_path: Path, source: dict[str, torch.Tensor]) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "crafted.pth"
    torch.save({"state_dict": source, "extra": [_Gadget(marker)]}, path)
    with pytest.raises(ValueError) as info:
        create_backbone(StudentConfig(backbone=BACKBONE, pretrained=str(path)))
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_damaged_and_missing_files_name_the_file(tmp_path: Path) -> None:
    damaged = tmp_path / "cut.pth"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="cut.pth"):
        create_backbone(StudentConfig(backbone=BACKBONE, pretrained=str(damaged)))
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        create_backbone(StudentConfig(backbone=BACKBONE, pretrained=str(tmp_path / "nothing.pth")))
