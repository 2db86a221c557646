"""``clipzss.method.create`` with the checkpoints it accepts: training checkpoints and state dicts of the wrapper
(-> ``CLIPZSS`` with those weights), inference checkpoints (-> ``ZeroShotSegmenter``), and what it refuses."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from clipzss.method import create, save
from clipzss.model import CLIPZSS
from clipzss.segmenter import ZeroShotSegmenter
from ovcore.train import CHECKPOINT_FORMAT

PRESET = "clipzss_tiny_convnext_segformer"


@pytest.fixture(scope="module")
def trained() -> CLIPZSS:
    torch.manual_seed(1)
    model = create(PRESET, crop_size=64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # weights no fresh model has
    return model


@pytest.mark.parametrize("kind", ["training checkpoint", "state dict"])
def test_wrapper_weights_are_loaded(trained: CLIPZSS, tmp_path: Path, kind: str) -> None:
    state = copy.deepcopy(trained.state_dict())
    payload = {"format": CHECKPOINT_FORMAT, "model": state, "iteration": 2} if kind == "training checkpoint" else state
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    torch.manual_seed(2)
    model = create(PRESET, str(path), crop_size=64)
    assert isinstance(model, CLIPZSS)
    got = model.state_dict()
    tensors = [k for k, v in state.items() if isinstance(v, torch.Tensor)]
    assert set(got) == set(state) and len(tensors) > 100
    assert all(torch.equal(got[k], state[k]) for k in tensors)


def test_inference_checkpoint_gives_the_segmenter(trained: CLIPZSS, tmp_path: Path) -> None:
    path = tmp_path / "inference.pt"
    save(trained, path)
    seg = create(PRESET, str(path))
    assert isinstance(seg, ZeroShotSegmenter)
    student = trained.student.state_dict()
    assert all(torch.equal(v, student[k]) for k, v in seg.student.state_dict().items())
    with pytest.raises(ValueError, match="carries its own config"):
        create(PRESET, str(path), crop_size=64)


def test_weights_of_another_preset_are_one_clear_error(trained: CLIPZSS, tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(trained.state_dict(), path)
    with pytest.raises(ValueError) as info:
        create("clipzss_tiny_resnet_upernet", str(path), crop_size=64)
    message = str(info.value)
    assert str(path) in message and "clipzss_tiny_resnet_upernet" in message and "does not fit" in message
    assert "Error(s) in loading" not in message and "\n" not in message


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="list.pt"):
        create(PRESET, str(path))


def test_other_templates_are_encoded_once_per_name(trained: CLIPZSS, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "inference.pt"
    save(trained, path)
    seg = create(PRESET, str(path))
    encoded: list[list[str]] = []
    real = ZeroShotSegmenter._encode

    def counting(self: ZeroShotSegmenter, names: list[str], templates: list[str] | None = None) -> torch.Tensor:
        encoded.append(list(names))
        return real(self, names, templates)

    monkeypatch.setattr(ZeroShotSegmenter, "_encode", counting)
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    first = seg.predict(images, ["sky", "grass", "zebra"], templates=["a photo of a {}.", "a {}."])
    again = seg.predict(images, ["zebra", "sky"], templates=["a photo of a {}.", "a {}."])
    assert encoded == [["sky", "grass", "zebra"]]  # the second call reuses every row
    assert first.class_names == ["sky", "grass", "zebra"] and again.class_names == ["zebra", "sky"]
    # the rows equal a direct encoding with the same templates, and other templates give other rows
    direct = real(seg, ["zebra", "sky"], ["a photo of a {}.", "a {}."])
    torch.testing.assert_close(seg.text_embeddings, torch.nn.functional.normalize(direct.float(), dim=-1))
    seg.predict(images, ["zebra"], templates=["{}"])
    assert encoded[-1] == ["zebra"]
