"""ZegCLIP / mmseg data pipeline (ZegCLIP ``configs/_base_/datasets/*``), without normalisation (model's job)."""

from __future__ import annotations

import torch

from ovcore.data.transforms import functional as TF
from ovcore.data.transforms._base import Sample, SampleTransform

__all__ = ["MMSEG_PAD_COLOUR", "MMSegTrainTransform", "MMSegTestTransform"]

MMSEG_PAD_COLOUR = (124, 116, 104)
"""mmseg's ImageNet mean (123.675, 116.28, 103.53) rounded: mmseg pads after normalising, with 0, so a padded pixel
is the mean colour; padding the uint8 crop with it gives the same input (within 0.006) to a network that normalises
with that mean."""


class MMSegTrainTransform(SampleTransform):
    """mmseg training augmentation: Resize(ratio_range) -> RandomCrop(cat_max_ratio) -> RandomFlip ->
    PhotoMetricDistortion -> Pad.

    1. Rescale keeping the aspect ratio to ``scale`` (2048, 512) times a ratio drawn from ``ratio_range``
       (0.5-2.0): the image fits inside ``(int(2048 r), int(512 r))`` as (long, short) limits; cv2-style bilinear
       for the image, nearest for the label.
    2. Random crop ``crop_size`` (512x512) with ``cat_max_ratio`` 0.75 (no class above 75 % of the non-ignored
       crop pixels; 10 tries, then one unchecked box, as mmseg).
    3. Horizontal flip with probability ``flip_prob``.
    4. Photometric distortion (mmseg ``PhotoMetricDistortion``).
    5. Pad bottom/right to ``crop_size``: image ``pad_value`` (the mean colour, see :data:`MMSEG_PAD_COLOUR`), label
       ``ignore_index`` (255). The sample also gets ``"pad_mask"`` (bool (H, W), True on the padding), so a model
       can set the padding to exactly 0 after its own normalisation (mmseg's pad-after-normalise) whatever mean it
       uses (CLIP-ZSS does, for its student and for its CLIP teacher).

    Args:
        scale: (long, short) base scale.
        ratio_range: range of the random scale ratio.
        crop_size: (h, w) of the crop and the padding.
        cat_max_ratio: category ratio limit of the crop (1.0 disables).
        flip_prob: horizontal flip probability.
        photometric: apply the photometric distortion.
        pad_value: image padding colour (one value or one per channel); 0 gives black borders, which mmseg does
            not produce.
        return_pad_mask: add ``"pad_mask"`` to the sample.
        ignore_index: label padding value and the category ignored by the crop constraint.
        generator: default RNG (see :class:`SampleTransform`).
    """

    def __init__(
        self,
        scale: tuple[int, int] = (2048, 512),
        ratio_range: tuple[float, float] = (0.5, 2.0),
        crop_size: tuple[int, int] = (512, 512),
        *,
        cat_max_ratio: float = 0.75,
        flip_prob: float = 0.5,
        photometric: bool = True,
        pad_value: int | tuple[int, int, int] = MMSEG_PAD_COLOUR,
        return_pad_mask: bool = True,
        ignore_index: int = 255,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.scale, self.ratio_range, self.crop_size = tuple(scale), tuple(ratio_range), tuple(crop_size)
        self.cat_max_ratio, self.flip_prob, self.photometric = cat_max_ratio, flip_prob, photometric
        self.pad_value, self.return_pad_mask, self.ignore_index = pad_value, return_pad_mask, ignore_index

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        gen = self._gen(generator)
        image, label = self._check(sample)
        if label is None:
            raise ValueError("MMSegTrainTransform needs sample['label']")
        ratio = TF.uniform(gen, *self.ratio_range)
        target = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        size = TF.mmcv_rescale_size(*image.shape[1:], target)
        image = TF.resize_image_bilinear(image, size)
        label = TF.resize_label_nearest(label, size, backend="opencv")
        y0, x0, ch, cw = TF.category_crop_box(
            label, *self.crop_size, self.cat_max_ratio, self.ignore_index, gen, resample_after_last_try=True
        )
        image = image[:, y0 : y0 + ch, x0 : x0 + cw]
        label = label[y0 : y0 + ch, x0 : x0 + cw]
        if TF.coin(gen, self.flip_prob):
            image, label = image.flip(-1), label.flip(-1)
        if self.photometric:
            image = TF.photometric_distortion(image, gen, hue_inclusive=False)
        out = {**sample, "image": TF.pad_bottom_right(image, self.crop_size, self.pad_value).contiguous()}
        out["label"] = TF.pad_bottom_right(label, self.crop_size, self.ignore_index).contiguous()
        if self.return_pad_mask:
            out["pad_mask"] = TF.pad_mask_bottom_right(*label.shape, self.crop_size)
        return out


class MMSegTestTransform(SampleTransform):
    """mmseg test resize (ZegCLIP: ``Resize(img_scale=(2048, 512), keep_ratio=True, min_size=512)``).

    With ``min_size`` (ZegCLIP's mmseg fork) the short side becomes ``max(min(scale), min_size)`` and the long
    side follows the aspect ratio without the 2048 cap; with ``min_size=None`` it is plain mmcv rescaling
    (fit inside (2048, 512) as long/short limits). ``keep_ratio=False`` resizes to exactly ``scale`` = (w, h).
    The label keeps the original resolution (mmseg evaluates at the original size) unless ``resize_label``.
    """

    def __init__(
        self,
        scale: tuple[int, int] = (2048, 512),
        *,
        keep_ratio: bool = True,
        min_size: int | None = 512,
        resize_label: bool = False,
    ) -> None:
        super().__init__(None)
        self.scale, self.keep_ratio, self.min_size, self.resize_label = tuple(scale), keep_ratio, min_size, resize_label

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """The (h, w) an (h, w) input is resized to."""
        if not self.keep_ratio:
            return self.scale[1], self.scale[0]
        if self.min_size is None:
            return TF.mmcv_rescale_size(h, w, self.scale)
        short = max(min(self.scale), self.min_size)
        long_ = short * max(h, w) / min(h, w)
        # mmseg passes (long, short) back through mmcv rescaling, which makes the short side exactly `short`.
        return TF.mmcv_rescale_size(h, w, (long_, short))

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        image, label = self._check(sample)
        size = self.output_size(*image.shape[1:])
        out = {**sample, "image": TF.resize_image_bilinear(image, size)}
        if label is not None and self.resize_label:
            out["label"] = TF.resize_label_nearest(label, size, backend="opencv")
        return out
