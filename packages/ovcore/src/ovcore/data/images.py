"""Any image in: the one conversion every method's ``predict`` applies to its ``images`` argument.

Accepted, alone or in a list / tuple:

* a PIL image: EXIF orientation applied, any mode converted to RGB, samples deeper than 8 bits scaled (the reading
  rules of :func:`ovcore.data.io.read_image`);
* a file path (``str`` or ``os.PathLike``): read with :func:`ovcore.data.io.read_image`;
* a numpy array ``(H, W)`` grey, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), of any
  sample type, scaled to uint8 by :func:`ovcore.data.io.to_uint8` (uint8 as is, floats in [0, 1] times 255, uint16
  by its high byte);
* a torch tensor ``(3, H, W)`` or ``(B, 3, H, W)``, uint8 or floating point. **Float tensors are 0..255 RGB**, as the
  data pipeline's images (not 0..1, not normalised); they are passed on unchanged.

Images of one call must share one size: the methods run one batch. Images of different sizes go through
:func:`ovcore.method.predict_each`, one call per image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from ovcore.data.io import _pil_to_rgb, read_image, to_uint8

__all__ = ["ACCEPTED_IMAGES", "as_image_batch", "as_image_list"]

ACCEPTED_IMAGES = (
    "a PIL image, a file path, a numpy array (H, W), (H, W, 3) or (H, W, 4), a uint8 or 0..255 float torch tensor "
    "(3, H, W) or (B, 3, H, W), or a list of these"
)
"""What :func:`as_image_batch` accepts, in words (the text of its TypeError)."""


def _from_pil(image: Image.Image) -> torch.Tensor:
    name = getattr(image, "filename", "") or "PIL image"
    rgb = _pil_to_rgb(ImageOps.exif_transpose(image), image.format, name)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"a numpy image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    rgb = to_uint8(np.ascontiguousarray(array[..., :3]), name="numpy image")
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _check_tensor(images: torch.Tensor) -> torch.Tensor:
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"an image tensor must be RGB (3, H, W) or (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"an image tensor must be uint8 or 0..255 float, got {images.dtype}")
    return images


def _one(image: Any) -> list[torch.Tensor]:
    """One accepted item -> its (3, H, W) images (a batch tensor gives several)."""
    if isinstance(image, torch.Tensor):
        images = _check_tensor(image)
        return list(images) if images.dim() == 4 else [images]
    if isinstance(image, Image.Image):
        return [_from_pil(image)]
    if isinstance(image, np.ndarray):
        return [_from_numpy(image)]
    if isinstance(image, (str, os.PathLike)):
        return [read_image(image)]
    raise TypeError(f"cannot read an image from {type(image).__name__}; give {ACCEPTED_IMAGES}")


def as_image_list(images: Any) -> list[torch.Tensor]:
    """Every accepted input -> a list of (3, H, W) uint8 or 0..255 float tensors (sizes may differ).

    Raises:
        TypeError: an input of another type (the message lists the accepted ones).
        ValueError: a tensor or array of the wrong shape, or no image at all.
        FileNotFoundError: a path that does not exist.
    """
    items: Sequence[Any] = images if isinstance(images, (list, tuple)) else [images]
    out = [img for item in items for img in _one(item)]
    if not out:
        raise ValueError(f"no image given; give {ACCEPTED_IMAGES}")
    return out


def as_image_batch(images: Any) -> torch.Tensor:
    """Every accepted input -> one (B, 3, H, W) batch, uint8 (float32 0..255 when any input is a float tensor).

    A (B, 3, H, W) tensor is returned as is (same device, no copy).

    Raises:
        TypeError: an input of another type (the message lists the accepted ones).
        ValueError: a wrong shape, no image, or images of different sizes (use ``ovcore.method.predict_each``).
    """
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return _check_tensor(images)
    frames = as_image_list(images)
    sizes = sorted({tuple(f.shape[-2:]) for f in frames})
    if len(sizes) > 1:
        raise ValueError(
            f"images of different sizes {sizes} cannot form one batch: predict them one at a time, e.g. with "
            "ovcore.method.predict_each(model, images)"
        )
    if any(f.is_floating_point() for f in frames):
        frames = [f.float() for f in frames]
    return torch.stack(frames)
