"""``read_image``: every input image becomes uint8 RGB the way a viewer shows it, whatever its depth and mode.

Fixtures are written in the exact on-disk formats: 16-bit RGB PNGs by a minimal PNG encoder (PIL cannot write
them), TIFFs with tifffile, the rest with PIL.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from ovcore.data import SemSegFolder, read_image, read_label
from ovcore.data.io import to_uint8

RAMP16 = np.array([[0, 255, 256, 4660], [32768, 65280, 65534, 65535]], dtype=np.uint16)  # 4660 = 0x1234


def _hwc(image: torch.Tensor) -> np.ndarray:
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    return image.permute(1, 2, 0).numpy()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def save_png16_rgb(path: Path, rgb: np.ndarray) -> Path:
    """A 16-bit-per-sample RGB PNG (colour type 2, bit depth 16), rows unfiltered."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )
    return path


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


# ------------------------------------------------------------------------------------------------ deep samples
def test_16bit_grey_png_is_scaled_not_saturated(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    Image.fromarray(RAMP16).save(path)
    assert Image.open(path).mode == "I;16"
    out = _hwc(read_image(path))
    assert out[..., 0].tolist() == [[0, 0, 1, 18], [128, 255, 255, 255]]  # the high byte
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_16bit_rgb_png_reads_like_its_grey_twin(tmp_path: Path) -> None:
    rgb = np.stack([RAMP16, RAMP16[::-1], np.full_like(RAMP16, 4660)], axis=-1)
    out = _hwc(read_image(save_png16_rgb(tmp_path / "rgb16.png", rgb)))
    assert np.array_equal(out, (rgb >> 8).astype(np.uint8))
    Image.fromarray(RAMP16).save(tmp_path / "grey16.png")
    assert np.array_equal(_hwc(read_image(tmp_path / "grey16.png"))[..., 0], out[..., 0])


def test_16bit_tiffs_grey_and_rgb(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "g.tif", RAMP16)
    rgb = np.stack([RAMP16] * 3, axis=-1)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    expected = (rgb >> 8).astype(np.uint8)
    assert np.array_equal(_hwc(read_image(tmp_path / "g.tif")), expected)
    assert np.array_equal(_hwc(read_image(tmp_path / "c.tif")), expected)


def test_int32_tiff_by_value_range(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    small = np.array([[0, 7], [200, 255]], dtype=np.int32)
    tifffile.imwrite(tmp_path / "small.tif", small)
    assert _hwc(read_image(tmp_path / "small.tif"))[..., 0].tolist() == [[0, 7], [200, 255]]
    tifffile.imwrite(tmp_path / "deep.tif", RAMP16.astype(np.int32))
    assert np.array_equal(_hwc(read_image(tmp_path / "deep.tif"))[..., 0], RAMP16 >> 8)
    tifffile.imwrite(tmp_path / "wide.tif", np.array([[-100, 0], [100, 1 << 20]], dtype=np.int32))
    with caplog.at_level(logging.WARNING, logger="ovcore.data.io"):
        wide = _hwc(read_image(tmp_path / "wide.tif"))[..., 0]
    assert wide[0, 0] == 0 and wide[1, 1] == 255 and "min-max" in caplog.text and "wide.tif" in caplog.text


def test_float_tiffs_grey_and_rgb(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32)
    tifffile.imwrite(tmp_path / "unit.tif", unit)
    assert _hwc(read_image(tmp_path / "unit.tif"))[..., 0].tolist() == [[0, 128], [64, 255]]
    tifffile.imwrite(tmp_path / "bytes.tif", unit * 200)
    assert _hwc(read_image(tmp_path / "bytes.tif"))[..., 0].tolist() == [[0, 100], [50, 200]]
    rgb = np.stack([unit, 1 - unit, np.full_like(unit, 0.2)], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")  # PIL cannot open this one: tifffile reads it
    assert np.array_equal(_hwc(read_image(tmp_path / "rgb.tif")), np.rint(rgb * 255).astype(np.uint8))


def test_to_uint8_rules() -> None:
    assert to_uint8(np.array([[True, False]])).tolist() == [[255, 0]]
    assert to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
    assert to_uint8(np.array([-1.0, 0.0, 3.0])).tolist() == [0, 64, 255]  # min-max
    assert to_uint8(np.array([np.nan, 1.0])).tolist() == [0, 255]
    assert to_uint8(np.array([5, 5], dtype=np.int64) * 10**6).tolist() == [0, 0]  # constant: min-max of a flat image


# ------------------------------------------------------------------------------------------------ modes
def test_palette_rgba_la_and_cmyk_become_rgb(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    pal.putdata([0, 1])
    pal.save(tmp_path / "p.png")
    assert _hwc(read_image(tmp_path / "p.png")).tolist() == [[[10, 20, 30], [200, 100, 50]]]
    rgba = np.array([[[1, 2, 3, 0], [4, 5, 6, 255]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert _hwc(read_image(tmp_path / "a.png")).tolist() == [[[1, 2, 3], [4, 5, 6]]]  # alpha dropped
    Image.fromarray(np.array([[[9, 0], [99, 255]]], dtype=np.uint8), "LA").save(tmp_path / "la.png")
    assert _hwc(read_image(tmp_path / "la.png")).tolist() == [[[9, 9, 9], [99, 99, 99]]]
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(255, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 255)])
    cmyk.save(tmp_path / "cmyk.tif")
    assert _hwc(read_image(tmp_path / "cmyk.tif")).tolist() == [[[0, 255, 255], [255, 255, 255], [0, 0, 0]]]
    Image.new("CMYK", (16, 16), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert np.abs(_hwc(read_image(tmp_path / "cmyk.jpg")).astype(int) - [255, 0, 255]).max() <= 3


# ------------------------------------------------------------------------------------------------ orientation
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_rotation_is_applied(tmp_path: Path, suffix: str) -> None:
    array = np.zeros((16, 32, 3), dtype=np.uint8)
    array[:, :16] = 255  # left half white
    path = tmp_path / f"rot{suffix}"
    Image.fromarray(array).save(path, exif=_exif(6))  # 6: display rotated 90 degrees clockwise
    out = _hwc(read_image(path))
    assert out.shape == (32, 16, 3) and out[:8].min() > 200 and out[-8:].max() < 50  # white on top
    assert read_image(path, apply_exif=False).shape == (3, 16, 32)


def test_exif_rotation_of_a_16bit_png(tmp_path: Path) -> None:
    path = tmp_path / "rot16.png"
    Image.fromarray(RAMP16).save(path, exif=_exif(3))  # 3: rotated 180 degrees
    assert np.array_equal(_hwc(read_image(path))[..., 0], (RAMP16 >> 8)[::-1, ::-1])


def test_orientation_tag_of_a_tiff_only_tifffile_reads(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.float32)
    rgb[0, 0] = 1.0
    tifffile.imwrite(tmp_path / "o.tif", rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    out = _hwc(read_image(tmp_path / "o.tif"))
    assert out.shape == (3, 2, 3) and out[0, 1].tolist() == [255, 255, 255] and out.sum() == 3 * 255
    assert _hwc(read_image(tmp_path / "o.tif", apply_exif=False)).shape == (2, 3, 3)


# ------------------------------------------------------------------------------------------------ users
def test_labels_stay_exact_while_images_are_scaled(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    Image.fromarray(RAMP16).save(tmp_path / "img/a.png")
    tifffile.imwrite(tmp_path / "lab/a.tif", RAMP16)
    assert np.array_equal(read_label(tmp_path / "lab/a.tif"), RAMP16.astype(np.int64))
    ds = SemSegFolder(
        tmp_path / "img", tmp_path / "lab", num_classes=65535, ignore_index=65535, image_ext=".png", label_ext=".tif"
    )
    sample = ds[0]
    assert sample["label"].tolist() == RAMP16.astype(np.int64).tolist()
    assert sample["image"][0].tolist() == (RAMP16 >> 8).tolist()


def test_sed_predict_reads_through_the_same_reader(tmp_path: Path) -> None:
    read_rgb = pytest.importorskip("sed.cli.visualize").read_rgb
    Image.fromarray(RAMP16).save(tmp_path / "g.png")
    assert read_rgb(tmp_path / "g.png")[..., 0].tolist() == (RAMP16 >> 8).tolist()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ValueError, match="bad.tif"):
        read_image(tmp_path / "bad.tif")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        read_image(tmp_path / "bad.png")


def test_an_image_over_the_pixel_limit_is_a_value_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PIL's DecompressionBombError is no ValueError / OSError: without the catch it escaped the one-line convention.
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 64 pixels > 2 x 10: PIL refuses to decode it
    with pytest.raises(ValueError, match=r"big\.png.*exceeds limit"):
        read_image(tmp_path / "big.png")
