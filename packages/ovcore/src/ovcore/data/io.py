"""Reading and writing images and label maps in the on-disk formats of the benchmarks.

Every input image (datasets, prepare scripts, ``sed-predict``) is read by :func:`read_image`: PIL decodes it (EXIF
orientation applied, like detectron2's ``read_image``), a TIFF PIL cannot decode (float RGB) falls back to tifffile,
and the samples become uint8 RGB (3, H, W) by the rules of :func:`to_uint8`. Label maps are not images: they are
read exactly, never scaled: single-channel PNGs (uint8 "L", palette "P" whose indices are the labels, or 16-bit) or
uint16 TIFFs (ADE20K-847, PASCAL Context-459) and are returned as int64 numpy arrays.
Every failure names the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ovcore.files import atomic_write

__all__ = ["read_image", "read_label", "write_image", "write_label", "to_uint8", "LABEL_EXTS", "IMAGE_EXTS"]

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
LABEL_EXTS = (".png", ".tif", ".tiff")


def read_image(path: str | os.PathLike, *, apply_exif: bool = True) -> torch.Tensor:
    """Read an image file as an RGB uint8 tensor.

    Palette, grey, grey+alpha, RGBA and CMYK images become RGB by PIL's conversion (alpha is dropped, not
    composited: the stored colour of a transparent pixel is kept, as PIL's ``convert("RGB")`` and cv2's
    ``IMREAD_COLOR`` do). Samples deeper than 8 bits are scaled to 0..255 by :func:`to_uint8`.

    Args:
        path: an image file PIL can read (JPEG, PNG, TIFF, BMP, WebP, GIF, ...).
        apply_exif: rotate/flip by the EXIF orientation tag, as detectron2's ``read_image`` and cv2's
            ``IMREAD_COLOR`` do.

    Returns:
        uint8 tensor (3, H, W).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (truncated, not an image, or over PIL's decompression-bomb limit).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        array = _decode_rgb(path, apply_exif)
    # PIL raises these for truncated / non-image files, and DecompressionBombError for an image over its pixel limit
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read image file {path}: {e}") from e
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # a writable copy


def to_uint8(samples: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Scale image samples of any depth to uint8, the way image viewers show them.

    - uint8 as is; bool as 0/255.
    - uint16 (16-bit PNG/TIFF): ``v >> 8``, the high byte. Pillow itself decodes 16-bit RGB(A) PNGs and TIFFs
      this way, so a 16-bit grey image and the same image stored as 16-bit RGB read the same (ImageMagick's
      ``round(v * 255 / 65535)`` differs by at most 1).
    - other integers (e.g. int32 TIFF): by value range: within 0..255 as is, within 0..65535 as 16-bit
      (``>> 8``), anything else (negative or larger) min-max scaled to 0..255 with a warning.
    - floats: within [0, 1] scaled by 255 and rounded; else within [0, 255] rounded as is; else min-max scaled
      with a warning. NaN and infinities count as 0 (with a warning).

    Args:
        samples: (H, W) or (H, W, C) array.
        name: what to call the image in warnings (its path).

    Returns:
        uint8 array of the same shape.
    """
    a = np.asarray(samples)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return _integers_to_uint8(a.astype(np.int64), name)
    if np.issubdtype(a.dtype, np.floating):
        return _floats_to_uint8(a.astype(np.float64), name)
    raise ValueError(f"unsupported sample type {a.dtype} in {name}")


def _integers_to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi <= 255:
        return a.astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return (a >> 8).astype(np.uint8)
    return _min_max(a.astype(np.float64), name, f"integer samples {lo}..{hi}")


def _floats_to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    finite = np.isfinite(a)
    if not finite.all():
        logger.warning("%s: %d NaN/infinite samples read as 0", name, int((~finite).sum()))
        a = np.where(finite, a, 0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        return np.rint(a * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(a).astype(np.uint8)
    return _min_max(a, name, f"float samples {lo:g}..{hi:g}")


def _min_max(a: np.ndarray, name: str, what: str) -> np.ndarray:
    # No range fits: stretch rather than clip, so the picture stays visible (a model input, not a measurement).
    logger.warning("%s: %s fit neither 0..1, 0..255 nor 0..65535; min-max scaled to 0..255", name, what)
    lo, span = a.min(), a.max() - a.min()
    if span == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.rint((a - lo) * (255.0 / span)).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _decode_rgb(path: Path, apply_exif: bool) -> np.ndarray:
    try:
        with Image.open(path) as im:
            fmt = im.format
            if apply_exif:
                im = ImageOps.exif_transpose(im)
            return _pil_to_rgb(im, fmt, str(path))
    except (OSError, SyntaxError, ValueError):
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise
        # PIL cannot decode some valid TIFFs (float or 32-bit RGB); tifffile can. Its error would only hide PIL's.
        try:
            return _tiff_to_rgb(path, apply_exif)
        except Exception:
            pass
        raise


def _pil_to_rgb(im: Image.Image, fmt: str | None, name: str) -> np.ndarray:
    if im.mode.startswith("I;16"):
        return _grey_to_rgb(to_uint8(np.asarray(im), name=name))
    if im.mode == "I" and fmt == "PNG":  # older Pillow opens 16-bit grey PNGs as "I"
        return _grey_to_rgb(to_uint8(np.asarray(im).clip(0, 65535).astype(np.uint16), name=name))
    if im.mode in ("I", "F"):  # 32-bit integer or float samples (TIFF)
        return _grey_to_rgb(to_uint8(np.asarray(im), name=name))
    # Palette, grey, grey+alpha, RGBA, CMYK, YCbCr: PIL's conversion (alpha dropped).
    return np.asarray(im.convert("RGB"))


# EXIF orientation (tag 274) -> the PIL transpose that undoes it (the EXIF 2.3 definitions).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _tiff_to_rgb(path: Path, apply_exif: bool) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        samples = page.asarray()
        photometric = int(page.photometric)
        separate = int(page.planarconfig) == 2
        orientation = int(page.tags["Orientation"].value) if "Orientation" in page.tags else 1
    if separate and samples.ndim == 3:
        samples = np.moveaxis(samples, 0, -1)
    if photometric not in (1, 2):  # 1 = grey (min is black), 2 = RGB
        raise ValueError(f"unsupported TIFF photometric interpretation {photometric} (grey or RGB expected)")
    rgb = to_uint8(samples, name=str(path))
    if rgb.ndim == 2:
        rgb = _grey_to_rgb(rgb)
    elif rgb.shape[-1] < 3:  # grey + alpha
        rgb = _grey_to_rgb(rgb[..., 0])
    rgb = np.ascontiguousarray(rgb[..., :3])  # extra samples (alpha) dropped, as for PIL-decoded images
    if apply_exif and orientation in _ORIENTATION:
        rgb = np.asarray(Image.fromarray(rgb).transpose(_ORIENTATION[orientation]))
    return rgb


def read_label(path: str | os.PathLike) -> np.ndarray:
    """Read a single-channel label map as an int64 array.

    Palette PNGs (VOC ``SegmentationClass``) give their palette indices, i.e. the class ids; TIFFs are read with
    tifffile (uint16 for ADE20K-847 and PASCAL Context-459).

    Args:
        path: PNG or TIFF file.

    Returns:
        int64 array (H, W).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded or is not a single-channel map.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = _read_tiff(path)
        else:
            with Image.open(path) as im:
                if im.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                    raise ValueError(
                        f"label maps must be single-channel (mode L, P or 16-bit), got mode {im.mode!r}; "
                        "colour-coded labels must be converted to class ids first"
                    )
                array = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:  # PIL / tifffile errors and the mode check above
        raise ValueError(f"cannot read label file {path}: {e}") from e
    if array.ndim != 2:
        raise ValueError(f"cannot read label file {path}: expected a 2-D map, got shape {array.shape}")
    return array.astype(np.int64)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path))
    except Exception as first_error:  # tifffile raises many types; fall back to PIL, which wrote the official files
        try:
            with Image.open(path) as im:
                return np.asarray(im)
        except Exception:
            raise ValueError(str(first_error)) from first_error


def write_image(path: str | os.PathLike, image: np.ndarray | torch.Tensor, *, quality: int | None = None) -> None:
    """Write an RGB image atomically (JPEG or PNG chosen by the suffix).

    Args:
        path: output file.
        image: uint8 (H, W, 3) array or (3, H, W) tensor.
        quality: JPEG quality; ``None`` keeps PIL's default (75), as the official prepare scripts do.
    """
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).cpu().numpy()
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    kwargs = {} if quality is None or fmt != "JPEG" else {"quality": quality}
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    # Atomic: an interrupted prepare never leaves a truncated file that a later (idempotent) run would skip.
    atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **kwargs))


def write_label(path: str | os.PathLike, label: np.ndarray, *, dtype: type = np.uint8) -> None:
    """Write a label map atomically: PNG ("L" for uint8) or TIFF (uint16) by the suffix.

    Args:
        path: output file (``.png`` or ``.tif``).
        label: integer array (H, W).
        dtype: on-disk dtype, ``np.uint8`` or ``np.uint16``.
    """
    path = Path(path)
    array = np.asarray(label)
    info = np.iinfo(dtype)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"label values {array.min()}..{array.max()} do not fit {np.dtype(dtype).name} for {path}")
    array = np.ascontiguousarray(array.astype(dtype))
    fmt = "TIFF" if path.suffix.lower() in (".tif", ".tiff") else "PNG"
    im = Image.fromarray(array)
    atomic_write(path, lambda tmp: im.save(tmp, format=fmt))
