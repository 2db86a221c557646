"""Reading and writing images and label maps in the on-disk formats of the benchmarks.

Images are JPEG/PNG read with PIL (EXIF orientation applied, like detectron2's ``read_image``) and returned as
uint8 RGB tensors (3, H, W). Label maps are single-channel PNGs (uint8 "L", palette "P" whose indices are the
labels, or 16-bit) or uint16 TIFFs (ADE20K-847, PASCAL Context-459) and are returned as int64 numpy arrays.
Every failure names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ovcore.files import atomic_write

__all__ = ["read_image", "read_label", "write_image", "write_label", "LABEL_EXTS", "IMAGE_EXTS"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
LABEL_EXTS = (".png", ".tif", ".tiff")


def read_image(path: str | os.PathLike, *, apply_exif: bool = True) -> torch.Tensor:
    """Read an image file as an RGB uint8 tensor.

    Args:
        path: JPEG or PNG file.
        apply_exif: rotate/flip by the EXIF orientation tag, as detectron2's ``read_image`` and cv2's
            ``IMREAD_COLOR`` do.

    Returns:
        uint8 tensor (3, H, W).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded (truncated or not an image).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            if apply_exif:
                im = ImageOps.exif_transpose(im)
            array = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises these for truncated / non-image files
        raise ValueError(f"cannot read image file {path}: {e}") from e
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


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
