"""SED's data pipeline (detectron2 ``MaskFormerSemanticDatasetMapper`` / ``DatasetMapper``, official SED config)."""

from __future__ import annotations

import torch

from ovcore.data.transforms import functional as TF
from ovcore.data.transforms._base import Sample, SampleTransform

__all__ = ["SEDTrainTransform", "SEDTestTransform"]


class SEDTrainTransform(SampleTransform):
    """SED training augmentation, in the official order.

    1. ResizeShortestEdge: short side ``short_edge`` (768), long side at most ``max_size`` (2666); image PIL
       bilinear, label nearest.
    2. Random crop ``crop_size`` x ``crop_size`` (768; smaller sides are kept whole); with ``cat_max_ratio < 1``
       the detectron2 category-area constraint (10 tries; the released config uses 1.0, i.e. disabled).
    3. SSD colour augmentation (detectron2 ``ColorAugSSDTransform``), if ``color_aug``.
    4. Horizontal flip with probability ``flip_prob``.
    5. Pad bottom/right to ``crop_size`` with ``pad_value`` (128) for the image and ``ignore_index`` for the label.

    Args:
        short_edge / max_size: resize parameters.
        crop_size: crop and pad size.
        cat_max_ratio: single-category maximum area of the crop (1.0 disables the constraint).
        color_aug: apply the SSD colour augmentation.
        flip_prob: horizontal flip probability.
        pad_value: image padding value (before normalisation).
        ignore_index: label padding value and the category ignored by the area constraint.
        generator: default RNG (see :class:`SampleTransform`).
    """

    def __init__(
        self,
        short_edge: int = 768,
        max_size: int = 2666,
        crop_size: int = 768,
        *,
        cat_max_ratio: float = 1.0,
        color_aug: bool = True,
        flip_prob: float = 0.5,
        pad_value: int = 128,
        ignore_index: int = 255,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        self.short_edge, self.max_size, self.crop_size = short_edge, max_size, crop_size
        self.cat_max_ratio, self.color_aug, self.flip_prob = cat_max_ratio, color_aug, flip_prob
        self.pad_value, self.ignore_index = pad_value, ignore_index

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        gen = self._gen(generator)
        image, label = self._check(sample)
        if label is None:
            raise ValueError("SEDTrainTransform needs sample['label']")
        size = TF.shortest_edge_size(*image.shape[1:], self.short_edge, self.max_size)
        image = TF.resize_image_pil(image, size)
        label = TF.resize_label_nearest(label, size, backend="torch")
        y0, x0, ch, cw = TF.category_crop_box(
            label, self.crop_size, self.crop_size, self.cat_max_ratio, self.ignore_index, gen
        )
        image = image[:, y0 : y0 + ch, x0 : x0 + cw]
        label = label[y0 : y0 + ch, x0 : x0 + cw]
        if self.color_aug:
            image = TF.photometric_distortion(image, gen, hue_inclusive=True)
        if TF.coin(gen, self.flip_prob):
            image, label = image.flip(-1), label.flip(-1)
        pad_to = (self.crop_size, self.crop_size)
        image = TF.pad_bottom_right(image, pad_to, self.pad_value).contiguous()
        label = TF.pad_bottom_right(label, pad_to, self.ignore_index).contiguous()
        return {**sample, "image": image, "label": label}


class SEDTestTransform(SampleTransform):
    """SED test resize: short side ``short_edge`` (640), long side at most ``max_size`` (2560), PIL bilinear.

    The label keeps the original resolution by default, because SED scores predictions resized back to the
    original image size (the model's internal 768x768 warp is not done here). With ``resize_label=True`` the
    label is resized (nearest) to the image size instead.
    """

    def __init__(self, short_edge: int = 640, max_size: int = 2560, *, resize_label: bool = False) -> None:
        super().__init__(None)
        self.short_edge, self.max_size, self.resize_label = short_edge, max_size, resize_label

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        image, label = self._check(sample)
        size = TF.shortest_edge_size(*image.shape[1:], self.short_edge, self.max_size)
        out = {**sample, "image": TF.resize_image_pil(image, size)}
        if label is not None and self.resize_label:
            out["label"] = TF.resize_label_nearest(label, size, backend="torch")
        return out
