"""Tensor operations behind the SED (detectron2) and ZegCLIP (mmseg) data pipelines.

Images are uint8 tensors (3, H, W) RGB, labels int64 tensors (H, W). Randomness comes from an optional
``torch.Generator`` (``None``: torch's global RNG, which DataLoader seeds differently in every worker).

Backends follow the originals: detectron2 resizes uint8 images with PIL bilinear and labels (stored as float64
there) with ``F.interpolate(mode="nearest")``; mmcv resizes with cv2 (bilinear without antialiasing; nearest with
OpenCV's own index rounding, see ``resize_label_nearest``). cv2 is not a dependency, so its bilinear is emulated
with ``F.interpolate`` (±1 grey level) and its uint8 HSV conversion is reproduced with the same fixed-point tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "uniform",
    "randint",
    "coin",
    "shortest_edge_size",
    "mmcv_rescale_size",
    "resize_image_pil",
    "resize_image_bilinear",
    "resize_label_nearest",
    "opencv_nearest_index",
    "random_crop_box",
    "category_crop_box",
    "pad_bottom_right",
    "pad_mask_bottom_right",
    "rgb_to_hsv_u8",
    "hsv_to_rgb_u8",
    "photometric_distortion",
]


# ---------------------------------------------------------------------------------------------- random numbers
def uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    """A float in ``[low, high)``."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def randint(generator: torch.Generator | None, low: int, high: int) -> int:
    """An int in ``[low, high)``."""
    return int(torch.randint(low, high, (), generator=generator))


def coin(generator: torch.Generator | None, p: float = 0.5) -> bool:
    """True with probability ``p``."""
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < p


# ---------------------------------------------------------------------------------------------- sizes
def shortest_edge_size(h: int, w: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: short side to ``short_edge``, long side capped."""
    scale = short_edge / min(h, w)
    newh, neww = (short_edge, scale * w) if h < w else (scale * h, short_edge)
    if max(newh, neww) > max_size:
        scale = max_size / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def mmcv_rescale_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv ``rescale_size`` with a (long, short) tuple: the largest size fitting both edge limits."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


# ---------------------------------------------------------------------------------------------- resize
def resize_image_pil(image: torch.Tensor, size: tuple[int, int], resample: int = Image.BILINEAR) -> torch.Tensor:
    """Resize a uint8 (3, H, W) image to ``size`` = (h, w) with PIL (detectron2's path for uint8 images)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    out = np.asarray(pil.resize((size[1], size[0]), resample))
    return torch.from_numpy(out.copy()).permute(2, 0, 1).contiguous()


def resize_image_bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a uint8 (3, H, W) image like cv2 INTER_LINEAR (half-pixel centres, no antialiasing)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=False)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)


def resize_label_nearest(
    label: torch.Tensor, size: tuple[int, int], *, backend: Literal["opencv", "torch"]
) -> torch.Tensor:
    """Nearest-neighbour label resize, index for index as OpenCV or as torch.

    The two libraries pick different source rows/columns for some size pairs (e.g. 2200 -> 768), so each pipeline
    uses the one its original used: ``"opencv"`` for the official conversion scripts and mmcv/mmseg
    (``cv2.resize(..., interpolation=cv2.INTER_NEAREST)``), ``"torch"`` for detectron2/SED, which resizes labels
    stored as float64 with ``F.interpolate(mode="nearest")``. Label values are only moved (through float64 on
    the torch path, exact below 2**53), so any label id (e.g. 65535) survives unchanged.

    Args:
        label: integer tensor (..., H, W).
        size: output (h, w).
        backend: ``"opencv"`` or ``"torch"``.

    Returns:
        The resized label, same dtype.
    """
    h, w = label.shape[-2:]
    if (h, w) == tuple(size):
        return label
    if backend == "torch":
        return _resize_label_like_detectron2(label, size)
    if backend != "opencv":
        raise ValueError(f"unknown label resize backend {backend!r} (expected 'opencv' or 'torch')")
    rows, cols = opencv_nearest_index(h, size[0]), opencv_nearest_index(w, size[1])
    return label.index_select(-2, rows).index_select(-1, cols)


def opencv_nearest_index(n_in: int, n_out: int) -> torch.Tensor:
    """Source indices of cv2 ``INTER_NEAREST``: ``min(floor(dst * (1 / (n_out / n_in))), n_in - 1)``.

    OpenCV stores the inverse scale ``n_out / n_in`` and inverts it again, both in double precision; the rounding
    of that double round trip (not the exact ``dst * n_in / n_out``) decides the index, so it is replicated as is.
    """
    scale = 1.0 / (n_out / n_in)  # Python floats are IEEE doubles, as OpenCV's
    index = torch.floor(torch.arange(n_out, dtype=torch.float64) * scale).to(torch.int64)
    return index.clamp_(max=n_in - 1)


def _resize_label_like_detectron2(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # torch's nearest index rounding depends on the kernel path (dtype, memory layout, special-cased scales), so
    # the label goes through exactly detectron2's call: an (H, W, C) float64 array viewed as (1, C, H, W) by a
    # permute. float64 holds every label value exactly.
    h, w = label.shape[-2:]
    hwc = label.reshape(-1, h, w).permute(1, 2, 0).to(torch.float64).contiguous()
    out = F.interpolate(hwc[:, :, None].permute(2, 3, 0, 1), size=tuple(size), mode="nearest")
    return out[0].to(label.dtype).reshape(*label.shape[:-2], *size)


# ---------------------------------------------------------------------------------------------- crop / pad
def random_crop_box(
    h: int, w: int, crop_h: int, crop_w: int, generator: torch.Generator | None
) -> tuple[int, int, int, int]:
    """A uniformly placed box ``(y0, x0, ch, cw)`` with ``ch = min(crop_h, h)``, ``cw = min(crop_w, w)``."""
    ch, cw = min(crop_h, h), min(crop_w, w)
    return randint(generator, 0, h - ch + 1), randint(generator, 0, w - cw + 1), ch, cw


def _category_ok(label: torch.Tensor, max_ratio: float, ignore_index: int) -> bool:
    values = label[label != ignore_index]
    if values.numel() == 0:
        return False
    counts = torch.bincount(values.flatten())  # O(n); labels are small non-negative ids
    counts = counts[counts > 0]
    return counts.numel() > 1 and float(counts.max()) < float(counts.sum()) * max_ratio


def category_crop_box(
    label: torch.Tensor,
    crop_h: int,
    crop_w: int,
    max_ratio: float,
    ignore_index: int,
    generator: torch.Generator | None,
    *,
    tries: int = 10,
    resample_after_last_try: bool = False,
) -> tuple[int, int, int, int]:
    """Random crop box in which no single category covers ``max_ratio`` or more of the non-ignored pixels.

    Up to ``tries`` boxes are tested. When all fail, detectron2 keeps the last tested box
    (``RandomCrop_CategoryAreaConstraint``); mmseg's ``RandomCrop`` draws one more, untested box
    (``resample_after_last_try=True``). ``max_ratio >= 1`` disables the check (one plain random box).
    """
    h, w = label.shape[-2:]
    box = random_crop_box(h, w, crop_h, crop_w, generator)
    if max_ratio >= 1.0:
        return box
    for attempt in range(tries):
        y0, x0, ch, cw = box
        if _category_ok(label[y0 : y0 + ch, x0 : x0 + cw], max_ratio, ignore_index):
            return box
        if attempt < tries - 1 or resample_after_last_try:
            box = random_crop_box(h, w, crop_h, crop_w, generator)
    return box


def pad_bottom_right(x: torch.Tensor, size: tuple[int, int], value: int | Sequence[int]) -> torch.Tensor:
    """Pad the last two dims on the bottom/right up to ``size`` (no-op when already large).

    Args:
        x: (..., H, W) tensor; (C, H, W) when ``value`` is per channel.
        size: (h, w) to pad to.
        value: One fill value, or one per channel (a colour, e.g. the normalisation mean).
    """
    h, w = x.shape[-2:]
    if h >= size[0] and w >= size[1]:
        return x
    out = x.new_zeros((*x.shape[:-2], max(h, size[0]), max(w, size[1])))
    if not isinstance(value, Sequence):  # one value (Python, numpy or 0-d torch scalar)
        out.fill_(value)
    else:
        if x.ndim != 3 or x.shape[0] != len(value):
            raise ValueError(f"a per-channel pad value {tuple(value)} needs a (C, H, W) tensor, got {tuple(x.shape)}")
        out[:] = torch.as_tensor(list(value), dtype=x.dtype).view(-1, 1, 1)
    out[..., :h, :w] = x
    return out


def pad_mask_bottom_right(h: int, w: int, size: tuple[int, int]) -> torch.Tensor:
    """Bool mask of what :func:`pad_bottom_right` adds to an (h, w) map: True on the padded rows and columns."""
    out_h, out_w = max(h, size[0]), max(w, size[1])
    mask = torch.ones(out_h, out_w, dtype=torch.bool)
    mask[:h, :w] = False
    return mask


# ---------------------------------------------------------------------------------------------- colour
# Colour operations run in numpy on (3, H, W) arrays, as the originals do: it is several times faster than
# small-integer torch ops on CPU, and deterministic.
_HSV_SHIFT = 12
_HALF = 1 << (_HSV_SHIFT - 1)
_idx = np.arange(256, dtype=np.float64)
with np.errstate(divide="ignore"):
    # cv2 RGB2HSV_b fixed-point tables (hue range 180): s = diff*255/v and h = num*180/(6*diff), rounded.
    _SDIV = np.where(_idx > 0, np.rint((255 << _HSV_SHIFT) / _idx), 0).astype(np.int32)
    _HDIV = np.where(_idx > 0, np.rint((180 << _HSV_SHIFT) / (6 * _idx)), 0).astype(np.int32)
# cv2 HSV2RGB sector table: (b, g, r) indices into (v, v(1-s), v(1-sh), v(1-s(1-h))), transposed to (3, 6).
_SECTOR = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]], dtype=np.intp).T


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb.astype(np.int32)
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = (diff * _SDIV[v] + _HALF) >> _HSV_SHIFT
    num = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (num * _HDIV[diff] + _HALF) >> _HSV_SHIFT
    h += 180 * (h < 0)
    return np.stack([h, s, v])


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h = hsv[0].astype(np.float32) * np.float32(6.0 / 180.0)
    s = hsv[1].astype(np.float32) * np.float32(1.0 / 255.0)
    v = hsv[2].astype(np.float32) * np.float32(1.0 / 255.0)
    sector = np.floor(h)
    frac = h - sector
    sector = sector.astype(np.intp) % 6
    tab = np.stack([v, v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))])
    bgr = np.take_along_axis(tab, _SECTOR[:, sector], 0)
    return np.clip(np.rint(bgr[::-1] * np.float32(255.0)), 0, 255).astype(np.uint8)


def rgb_to_hsv_u8(image: torch.Tensor) -> torch.Tensor:
    """cv2 ``COLOR_RGB2HSV`` for uint8: (3, H, W) RGB -> int32 (3, H, W) with H in 0..179, S and V in 0..255."""
    return torch.from_numpy(_rgb_to_hsv(image.numpy()))


def hsv_to_rgb_u8(hsv: torch.Tensor) -> torch.Tensor:
    """cv2 ``COLOR_HSV2RGB`` for uint8 input (H in 0..179): int (3, H, W) -> uint8 (3, H, W) RGB."""
    return torch.from_numpy(_hsv_to_rgb(hsv.numpy()))


def _convert(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    # float32 affine, clip, truncate to uint8: the originals' ``(x.astype(float32) * a + b).clip(0, 255)``.
    out = x.astype(np.float32)
    out *= np.float32(alpha)
    out += np.float32(beta)
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def photometric_distortion(
    image: torch.Tensor,
    generator: torch.Generator | None,
    *,
    brightness_delta: float = 32,
    contrast_range: tuple[float, float] = (0.5, 1.5),
    saturation_range: tuple[float, float] = (0.5, 1.5),
    hue_delta: int = 18,
    hue_inclusive: bool = True,
) -> torch.Tensor:
    """SSD colour augmentation (detectron2 ``ColorAugSSDTransform`` and mmseg ``PhotoMetricDistortion``).

    Each of brightness (+U(-delta, delta)), contrast (xU(range)), saturation (S xU(range)) and hue (+randint)
    is applied with probability 1/2; contrast comes first or last with probability 1/2. Every step rounds
    through uint8 as the originals do.

    Args:
        image: uint8 (3, H, W) RGB.
        generator: RNG.
        hue_inclusive: hue shift drawn from ``[-delta, delta]`` (detectron2, Python ``random.randint``) or
            ``[-delta, delta)`` (mmseg, ``np.random.randint``).
    """
    original = img = image.numpy()
    if coin(generator):
        img = _convert(img, beta=uniform(generator, -brightness_delta, brightness_delta))
    contrast_first = coin(generator)

    def contrast(x: np.ndarray) -> np.ndarray:
        return _convert(x, alpha=uniform(generator, *contrast_range)) if coin(generator) else x

    if contrast_first:
        img = contrast(img)
    if coin(generator):
        hsv = _rgb_to_hsv(img)
        hsv[1] = _convert(hsv[1], alpha=uniform(generator, *saturation_range))
        img = _hsv_to_rgb(hsv)
    if coin(generator):
        hsv = _rgb_to_hsv(img)
        hsv[0] = (hsv[0] + randint(generator, -hue_delta, hue_delta + int(hue_inclusive))) % 180
        img = _hsv_to_rgb(hsv)
    if not contrast_first:
        img = contrast(img)
    return image if img is original else torch.from_numpy(np.ascontiguousarray(img))
