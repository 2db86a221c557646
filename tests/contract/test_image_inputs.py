"""Any image in (``ovcore.data.images``): the conversion every method's ``predict`` applies to its input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ovcore.data.images import as_image_batch, as_image_list


def _rgb(h: int = 4, w: int = 6) -> np.ndarray:
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)


def test_a_batch_tensor_passes_through_unchanged() -> None:
    images = torch.zeros(2, 3, 4, 6, dtype=torch.uint8)
    assert as_image_batch(images) is images
    floats = torch.full((3, 4, 6), 200.0)
    out = as_image_batch(floats)
    assert out.shape == (1, 3, 4, 6) and out.dtype == torch.float32 and float(out.max()) == 200.0  # 0..255 kept


def test_pil_images_are_rotated_by_exif_and_converted_to_rgb() -> None:
    array = _rgb(4, 6)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90 CW to view"
    Image.fromarray(array).save(buf, format="JPEG", quality=100, exif=exif)
    rotated = as_image_batch(Image.open(io.BytesIO(buf.getvalue())))
    assert rotated.shape == (1, 3, 6, 4)  # displayed upright: width and height swap
    grey = Image.fromarray(np.full((4, 6), 7, dtype=np.uint8), mode="L")
    assert torch.equal(as_image_batch(grey), torch.full((1, 3, 4, 6), 7, dtype=torch.uint8))
    rgba = Image.fromarray(np.dstack([array, np.zeros((4, 6), np.uint8)]), mode="RGBA")
    assert torch.equal(as_image_batch(rgba)[0], _chw(array))  # alpha dropped, colours kept
    deep = Image.fromarray(np.full((4, 6), 0x8000, dtype=np.uint16))  # 16-bit grey: high byte
    assert int(as_image_batch(deep).max()) == 0x80


def test_numpy_arrays_follow_the_reading_rules() -> None:
    array = _rgb()
    assert torch.equal(as_image_batch(array)[0], _chw(array))
    assert torch.equal(as_image_batch(array.astype(np.float64) / 255.0)[0], _chw(array))  # floats in [0, 1]
    assert torch.equal(as_image_batch(array.astype(np.uint16) << 8)[0], _chw(array))  # uint16: high byte
    grey = array[..., 0]
    assert torch.equal(as_image_batch(grey)[0], _chw(np.repeat(grey[..., None], 3, axis=-1)))
    assert as_image_batch(grey[..., None]).shape == (1, 3, 4, 6)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        as_image_batch(np.zeros((4, 6, 2), np.uint8))


def test_paths_and_lists(tmp_path: Path) -> None:
    array = _rgb()
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    batch = as_image_batch([str(path), path, _chw(array), Image.fromarray(array)])
    assert batch.shape == (4, 3, 4, 6) and all(torch.equal(b, _chw(array)) for b in batch)
    mixed = as_image_batch([_chw(array), _chw(array).float()])
    assert mixed.dtype == torch.float32  # any float input makes the batch float (0..255)
    with pytest.raises(FileNotFoundError):
        as_image_batch(tmp_path / "missing.png")


def test_sizes_and_bad_inputs() -> None:
    frames = as_image_list([_rgb(4, 6), _rgb(5, 5)])
    assert [tuple(f.shape) for f in frames] == [(3, 4, 6), (3, 5, 5)]
    with pytest.raises(ValueError, match="different sizes"):
        as_image_batch([_rgb(4, 6), _rgb(5, 5)])
    with pytest.raises(ValueError, match="no image"):
        as_image_batch([])
    with pytest.raises(ValueError, match=r"\(3, H, W\) or \(B, 3, H, W\)"):
        as_image_batch(torch.zeros(4, 6, 3, dtype=torch.uint8))  # channels last is not a tensor layout
    with pytest.raises(ValueError, match="uint8 or 0..255 float"):
        as_image_batch(torch.zeros(3, 4, 6, dtype=torch.int64))
    for bad in (3.5, b"bytes", {"image": 1}):
        with pytest.raises(TypeError, match="accepted|PIL image"):
            as_image_batch(bad)
