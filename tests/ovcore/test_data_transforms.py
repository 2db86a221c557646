"""SED and mmseg transforms: sizes, image/label alignment, padding, determinism, colour conversions."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovcore.data import MMSegTestTransform, MMSegTrainTransform, SEDTestTransform, SEDTrainTransform
from ovcore.data.transforms import functional as TF

STEP = 24  # image grey level = label * STEP, so the label can be read back from the image


def coded_sample(h: int, w: int, num_classes: int = 9, seed: int = 0, block: int = 16) -> dict:
    """Blocky random label; the image encodes it (all channels = label * STEP): alignment is checkable."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_classes, ((h + block - 1) // block, (w + block - 1) // block), generator=g)
    label = coarse.repeat_interleave(block, 0).repeat_interleave(block, 1)[:h, :w].contiguous()
    image = (label * STEP).to(torch.uint8)[None].repeat(3, 1, 1)
    return {"image": image, "label": label, "name": "coded"}


def agreement(sample: dict, ignore: int = 255, margin: int = 3) -> float:
    """Fraction of block-interior pixels whose label matches the label decoded from the image.

    Pixels within ``margin`` of a label edge are left out: there the bilinear image blurs, and the nearest label
    of detectron2/mmcv (floor indices) is offset by a fraction of a pixel from the half-pixel-centred image.
    """
    label = sample["label"]
    padded = F.pad(label[None, None].float(), (margin,) * 4, mode="replicate")[0, 0].long()
    h, w = label.shape
    interior = torch.ones_like(label, dtype=torch.bool)
    for dy in (0, margin, 2 * margin):
        for dx in (0, margin, 2 * margin):
            interior &= padded[dy : dy + h, dx : dx + w] == label
    valid = interior & (label != ignore)
    decoded = torch.round(sample["image"][0].float() / STEP).long()
    return float((decoded[valid] == label[valid]).float().mean())


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ SED
def test_sed_train_output_size_alignment_and_flip() -> None:
    t = SEDTrainTransform(color_aug=False)
    sample = coded_sample(300, 400)
    for seed in range(3):
        out = t(sample, generator=gen(seed))
        assert out["image"].shape == (3, 768, 768) and out["image"].dtype == torch.uint8
        assert out["label"].shape == (768, 768) and out["label"].dtype == torch.int64
        assert out["name"] == "coded"
        assert agreement(out) > 0.99  # only bilinear edge pixels may disagree
    # A horizontally flipped label paired with an unflipped image would break the agreement:
    out = t(sample, generator=gen(1))
    assert agreement({"image": out["image"], "label": out["label"].flip(-1)}) < 0.6


def test_sed_train_flip_happens_about_half_the_time() -> None:
    t = SEDTrainTransform(color_aug=False)
    # A left/right gradient label tells whether the output was flipped.
    label = torch.arange(8).repeat_interleave(100)[None].repeat(768, 1)
    sample = {"image": (label * STEP).to(torch.uint8)[None].repeat(3, 1, 1), "label": label, "name": "g"}
    flipped = [bool(t(sample, generator=gen(s))["label"][0, 0] > 3) for s in range(16)]
    assert 0 < sum(flipped) < 16


def test_sed_train_resizes_short_side_then_crops() -> None:
    out = SEDTrainTransform(color_aug=False, crop_size=768)(coded_sample(300, 400), generator=gen(0))
    # 300x400 -> 768x1024: no padding needed, crop spans full height.
    assert (out["label"] != 255).all()
    assert TF.shortest_edge_size(300, 400, 768, 2666) == (768, 1024)
    assert TF.shortest_edge_size(400, 300, 768, 2666) == (1024, 768)
    assert TF.shortest_edge_size(20, 200, 768, 2666) == (267, 2666)  # long side capped


def test_sed_train_pads_extreme_aspect_ratio() -> None:
    sample = coded_sample(20, 200, block=10)
    out = SEDTrainTransform(color_aug=False)(sample, generator=gen(0))
    assert out["image"].shape == (3, 768, 768)
    assert (out["image"][:, 267:] == 128).all() and (out["label"][267:] == 255).all()
    assert (out["label"][:267] != 255).all()
    assert agreement(out, margin=10) > 0.99  # 13x upscaling: wide bilinear ramps at label edges


def test_sed_train_is_deterministic_given_a_generator() -> None:
    t = SEDTrainTransform()
    sample = coded_sample(200, 260)
    a, b = t(sample, generator=gen(3)), t(sample, generator=gen(3))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    c = t(sample, generator=gen(4))
    assert not torch.equal(a["image"], c["image"])
    # A generator given at construction is used statefully.
    t2 = SEDTrainTransform(generator=gen(3))
    assert torch.equal(t2(sample)["image"], a["image"])
    # The input sample is not modified.
    assert torch.equal(sample["label"], coded_sample(200, 260)["label"])


def test_sed_colour_aug_keeps_the_label() -> None:
    sample = coded_sample(96, 128)
    with_color = SEDTrainTransform(color_aug=True)(sample, generator=gen(5))
    without = SEDTrainTransform(color_aug=False)(sample, generator=gen(5))
    assert with_color["image"].shape == without["image"].shape
    # No flip (the colour draws would shift the flip coin): the crop is drawn first, so labels must be identical
    # while the colours change for at least one seed.
    changed = False
    for seed in range(4):
        with_color = SEDTrainTransform(color_aug=True, flip_prob=0.0)(sample, generator=gen(seed))
        without = SEDTrainTransform(color_aug=False, flip_prob=0.0)(sample, generator=gen(seed))
        assert torch.equal(with_color["label"], without["label"])
        changed |= not torch.equal(with_color["image"], without["image"])
    assert changed


def test_sed_category_area_constraint_option() -> None:
    label = torch.zeros(100, 100, dtype=torch.int64)
    label[:, :40] = 1
    sample = {"image": torch.zeros(3, 100, 100, dtype=torch.uint8), "label": label, "name": "c"}
    t = SEDTrainTransform(
        short_edge=100, max_size=1000, crop_size=50, cat_max_ratio=0.75, color_aug=False, flip_prob=0.0
    )
    for seed in range(10):
        crop = t(sample, generator=gen(seed))["label"][:50, :50]
        assert crop.flatten().bincount(minlength=2).max() < 0.75 * 2500


def test_sed_test_transform() -> None:
    sample = coded_sample(300, 400)
    out = SEDTestTransform()(sample)
    assert out["image"].shape == (3, 640, 853)
    assert torch.equal(out["label"], sample["label"])  # evaluation at the original resolution
    out = SEDTestTransform(resize_label=True)(sample)
    assert out["label"].shape == (640, 853) and agreement(out) > 0.99
    assert SEDTestTransform()(coded_sample(40, 400))["image"].shape == (3, 256, 2560)  # long side capped
    assert SEDTestTransform()({"image": sample["image"], "name": "x"})["image"].shape == (3, 640, 853)


# ------------------------------------------------------------------------------------------------ mmseg
def test_mmseg_train_output_size_alignment_padding() -> None:
    t = MMSegTrainTransform(photometric=False)
    sample = coded_sample(160, 200)
    saw_padding = False
    for seed in range(8):
        out = t(sample, generator=gen(seed))
        assert out["image"].shape == (3, 512, 512) and out["label"].shape == (512, 512)
        assert agreement(out) > 0.99
        pad_rows = (out["label"] == 255).all(1)
        if pad_rows.any():
            saw_padding = True
            # mmseg pads after normalising, with 0: the mean colour in uint8 (tests/clipzss/test_recipe.py).
            assert (out["image"][:, pad_rows] == torch.tensor([124, 116, 104]).view(3, 1, 1)).all()
            assert out["pad_mask"][pad_rows].all()
    assert saw_padding  # ratios near 0.5 give images under 512 px that need padding


def test_mmseg_random_resize_range() -> None:
    # (2048, 512) * r with r in [0.5, 2]: a 200x200 image gets short side 256..1024.
    for seed in range(20):
        g = gen(seed)
        ratio = TF.uniform(g, 0.5, 2.0)
        size = TF.mmcv_rescale_size(200, 200, (int(2048 * ratio), int(512 * ratio)))
        assert 256 <= size[0] <= 1024 and size[0] == size[1]
    assert TF.mmcv_rescale_size(100, 1000, (2048, 512)) == (205, 2048)


def test_mmseg_cat_max_ratio() -> None:
    label = torch.zeros(100, 100, dtype=torch.int64)
    label[:, :40] = 1
    label[:5] = 255  # ignored pixels do not count
    for seed in range(10):
        y0, x0, ch, cw = TF.category_crop_box(label, 50, 50, 0.75, 255, gen(seed), resample_after_last_try=True)
        counts = label[y0 : y0 + ch, x0 : x0 + cw]
        counts = counts[counts != 255].bincount(minlength=2)
        assert counts.max() < 0.75 * counts.sum()
    # 1.0 disables the check; a box in a single-class image is still returned after the tries.
    assert TF.category_crop_box(torch.zeros(60, 60, dtype=torch.int64), 50, 50, 0.75, 255, gen(0))[2:] == (50, 50)
    # Disabled means exactly one plain random box: the same draw as random_crop_box with the same RNG state.
    for seed in range(5):
        plain = TF.random_crop_box(100, 100, 50, 50, gen(seed))
        assert TF.category_crop_box(label, 50, 50, 1.0, 255, gen(seed)) == plain


def test_mmseg_train_is_deterministic() -> None:
    t = MMSegTrainTransform()
    sample = coded_sample(120, 150)
    a, b = t(sample, generator=gen(7)), t(sample, generator=gen(7))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_mmseg_test_transform_sizes() -> None:
    sample = coded_sample(300, 400)
    out = MMSegTestTransform()(sample)
    assert out["image"].shape == (3, 512, 683) and torch.equal(out["label"], sample["label"])
    wide = coded_sample(100, 1000)
    assert MMSegTestTransform()(wide)["image"].shape == (3, 512, 5120)  # ZegCLIP min_size: short side 512
    assert MMSegTestTransform(min_size=None)(wide)["image"].shape == (3, 205, 2048)  # plain mmcv rescale
    assert MMSegTestTransform(keep_ratio=False)(sample)["image"].shape == (3, 512, 2048)
    out = MMSegTestTransform(resize_label=True)(sample)
    assert out["label"].shape == (512, 683) and agreement(out) > 0.99


# ------------------------------------------------------------------------------------------------ functional
@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_resize_label_nearest_keeps_values_and_uses_floor_indices(backend: str) -> None:
    label = torch.tensor([[0, 65535, 847, 3]])
    assert TF.resize_label_nearest(label, (1, 8), backend=backend).tolist() == [[0, 0, 65535, 65535, 847, 847, 3, 3]]
    assert TF.resize_label_nearest(label, (2, 2), backend=backend).tolist() == [[0, 847], [0, 847]]


def test_pad_bottom_right() -> None:
    x = torch.ones(3, 2, 3, dtype=torch.uint8)
    out = TF.pad_bottom_right(x, (4, 4), 128)
    assert out.shape == (3, 4, 4) and (out[:, :2, :3] == 1).all() and (out[:, 2:] == 128).all()
    assert TF.pad_bottom_right(x, (1, 1), 0) is x
    # a colour: one value per channel; numpy / torch scalars are single values
    out = TF.pad_bottom_right(x, (4, 4), (124, 116, 104))
    assert out[:, 3, 3].tolist() == [124, 116, 104] and (out[:, :2, :3] == 1).all()
    assert (TF.pad_bottom_right(x, (4, 4), np.uint8(7))[:, 2:] == 7).all()
    assert (TF.pad_bottom_right(x, (4, 4), torch.tensor(9))[:, 2:] == 9).all()
    with pytest.raises(ValueError, match="per-channel pad value"):
        TF.pad_bottom_right(x, (4, 4), (1, 2))
    assert TF.pad_mask_bottom_right(2, 3, (4, 4)).tolist() == [[False] * 3 + [True]] * 2 + [[True] * 4] * 2


def test_hsv_matches_opencv_conventions() -> None:
    rgb = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [128, 128, 128], [0, 0, 0]])
    hsv = TF.rgb_to_hsv_u8(rgb.T.reshape(3, 1, -1).to(torch.uint8))[:, 0].T.tolist()
    assert hsv == [[0, 255, 255], [60, 255, 255], [120, 255, 255], [30, 255, 255], [0, 0, 128], [0, 0, 0]]
    g = gen(0)
    img = torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
    hsv = TF.rgb_to_hsv_u8(img)
    for y, x in [(0, 0), (3, 7), (31, 31), (10, 20)]:
        r, gg, b = (img[:, y, x].double() / 255).tolist()
        h, s, v = colorsys.rgb_to_hsv(r, gg, b)
        assert abs(hsv[0, y, x].item() - round(h * 180) % 180) <= 1
        assert abs(hsv[1, y, x].item() - s * 255) <= 1 and hsv[2, y, x].item() == round(v * 255)
    back = TF.hsv_to_rgb_u8(hsv)
    assert (back.int() - img.int()).abs().float().mean() < 1.5


def test_photometric_distortion_changes_colours_only() -> None:
    img = torch.randint(0, 256, (3, 16, 16), generator=gen(1), dtype=torch.uint8)
    outs = [TF.photometric_distortion(img, gen(s)) for s in range(8)]
    assert all(o.shape == img.shape and o.dtype == torch.uint8 for o in outs)
    assert any(not torch.equal(o, img) for o in outs)
    assert torch.equal(TF.photometric_distortion(img, gen(2)), outs[2])


def test_bad_samples_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"uint8 tensor \(3, H, W\)"):
        SEDTestTransform()({"image": torch.zeros(3, 4, 4), "name": "x"})
    with pytest.raises(ValueError, match="needs sample\\['label'\\]"):
        MMSegTrainTransform()({"image": torch.zeros(3, 4, 4, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="label.*shape"):
        SEDTrainTransform()({"image": torch.zeros(3, 4, 4, dtype=torch.uint8), "label": torch.zeros(4, 5)})
