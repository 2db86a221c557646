"""Nearest-neighbour label resizing equals OpenCV (official scripts, mmcv) or torch (detectron2), index for index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_fixtures import random_image, save_ade_seg_png, save_jpeg
from hypothesis import given, settings
from hypothesis import strategies as st

from ovcore.data import read_label
from ovcore.data._resources import ade847_full_ids
from ovcore.data.prepare import prepare_ade20k_847
from ovcore.data.transforms import functional as TF
from ovcore.data.transforms.mmseg import MMSegTestTransform
from ovcore.data.transforms.sed import SEDTestTransform

cv2 = pytest.importorskip("cv2")

sizes = st.integers(min_value=1, max_value=3000)


def _cv2_nearest(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(label, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _detectron2_nearest(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # detectron2 ResizeTransform.apply_image for non-uint8 maps: an (H, W) float64 array viewed as (1, 1, H, W).
    h, w = label.shape
    x = label.to(torch.float64).reshape(h, w, 1, 1).permute(2, 3, 0, 1)
    return F.interpolate(x, size, mode="nearest")[0, 0].to(label.dtype)


def test_opencv_index_differs_from_exact_floor_where_the_issue_saw_it() -> None:
    # 2200 -> 768 columns: the exact floor(dst * in / out) picks another column at 288, 480, 576, 672.
    index = TF.opencv_nearest_index(2200, 768)
    exact = torch.arange(768) * 2200 // 768
    assert (index != exact).nonzero().flatten().tolist() == [288, 480, 576, 672]
    ramp = np.arange(2200, dtype=np.uint16)[None].repeat(2, axis=0)
    assert index.tolist() == _cv2_nearest(ramp, (2, 768))[0].tolist()


@settings(max_examples=300, deadline=None)
@given(n_in=sizes, n_out=sizes)
def test_opencv_index_equals_cv2_on_many_size_pairs(n_in: int, n_out: int) -> None:
    ramp = (np.arange(n_in) % 65536).astype(np.uint16)[:, None].repeat(2, axis=1)  # rows direction
    expected = _cv2_nearest(ramp, (n_out, 2))[:, 0]
    index = TF.opencv_nearest_index(n_in, n_out).numpy()
    assert np.array_equal(ramp[index, 0], expected)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200), oh=st.integers(1, 400), ow=st.integers(1, 400))
def test_resize_label_nearest_opencv_equals_cv2_in_2d(h: int, w: int, oh: int, ow: int) -> None:
    label = np.random.default_rng(h * 1000 + w).integers(0, 65536, (h, w), dtype=np.uint16)
    out = TF.resize_label_nearest(torch.from_numpy(label.astype(np.int64)), (oh, ow), backend="opencv")
    assert np.array_equal(out.numpy(), _cv2_nearest(label, (oh, ow)).astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200), oh=st.integers(1, 400), ow=st.integers(1, 400))
def test_resize_label_nearest_torch_equals_detectron2(h: int, w: int, oh: int, ow: int) -> None:
    label = torch.randint(0, 65536, (h, w), generator=torch.Generator().manual_seed(h * 1000 + w))
    out = TF.resize_label_nearest(label, (oh, ow), backend="torch")
    assert torch.equal(out, _detectron2_nearest(label, (oh, ow)))


def test_resize_label_nearest_torch_at_sizes_where_torch_and_exact_floor_differ() -> None:
    # torch's kernel rounds away from floor(dst * in / out) for these, and which kernel runs depends on the other
    # dimension too (an unchanged or doubled width takes another path), so indices cannot be computed per axis.
    for h, w, oh, ow in [(2, 6, 82, 6), (2, 6, 94, 12), (300, 1100, 18, 77), (3, 3, 123, 3), (2, 6, 82, 74)]:
        label = torch.arange(h * w).reshape(h, w)
        out = TF.resize_label_nearest(label, (oh, ow), backend="torch")
        assert torch.equal(out, _detectron2_nearest(label, (oh, ow)))


def test_resize_label_nearest_rejects_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="'pil'"):
        TF.resize_label_nearest(torch.zeros(2, 2, dtype=torch.int64), (3, 3), backend="pil")  # type: ignore[arg-type]


def test_mmseg_and_sed_transforms_resize_labels_like_their_originals() -> None:
    # MMSeg's (2048, 512) keep-ratio scale takes 300 x 1100 to 512 x 1877: the label must equal cv2's resize to
    # that size; SED's must equal detectron2's.
    label = torch.randint(0, 150, (300, 1100), generator=torch.Generator().manual_seed(0))
    image = torch.zeros(3, 300, 1100, dtype=torch.uint8)
    out = MMSegTestTransform(resize_label=True)({"image": image, "label": label, "name": "x"})["label"]
    expected = _cv2_nearest(label.numpy().astype(np.uint16), tuple(out.shape))
    assert np.array_equal(out.numpy(), expected.astype(np.int64))
    out = SEDTestTransform(resize_label=True)({"image": image, "label": label, "name": "x"})["label"]
    assert torch.equal(out, _detectron2_nearest(label, tuple(out.shape)))


def test_prepare_ade20k_847_resizes_labels_like_the_official_cv2_script(tmp_path: Path) -> None:
    # 518 x 519 -> 512 x 513: OpenCV and the exact floor(dst * in / out) pick different rows/columns here.
    h, w = 518, 519
    ade_ids = np.array([int(e["ade_id"]) for e in ade847_full_ids()[:5]])
    train_ids = np.array([int(e["trainId"]) for e in ade847_full_ids()[:5]])
    pattern = (np.arange(h)[:, None] * 2 + np.arange(w)[None]) % 5  # neighbouring rows and columns always differ
    folder = tmp_path / "ADE20K_2021_17_01/images/ADE/validation/x"
    save_jpeg(folder / "ADE_val_00000001.jpg", random_image(h, w))
    save_ade_seg_png(folder / "ADE_val_00000001_seg.png", ade_ids[pattern])
    prepare_ade20k_847(tmp_path, progress=False)
    out = read_label(tmp_path / "ADE20K_2021_17_01/annotations_detectron2/validation/ADE_val_00000001.tif")
    expected = _cv2_nearest(train_ids[pattern].astype(np.uint16), (512, 513))
    assert np.array_equal(out, expected.astype(np.int64))
