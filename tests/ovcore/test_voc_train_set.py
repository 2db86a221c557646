"""VOC training set: the 10,582-image train.txt + aug.txt set by default, its absence an error, the 1,464-image
train.txt set only on request (``train_set="train"`` / ``ovcore prepare voc --train-set train``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import block_label, random_image, save_jpeg, save_png_l, save_png_palette

from ovcore.cli import main
from ovcore.data import build_dataset
from ovcore.data.prepare import prepare_voc


def make_voc(root: Path, *, aug_list: bool = True, aug_masks: bool = True) -> Path:
    """A VOC 2012 tree: one val image, two train.txt images (VOC masks) and one aug.txt image (SBD mask)."""
    voc = root / "VOCdevkit/VOC2012"
    sets = voc / "ImageSets/Segmentation"
    sets.mkdir(parents=True)
    images = {"2007_000033": "val", "2007_000061": "train", "2007_000063": "train", "2008_000123": "aug"}
    for stem, where in images.items():
        label = block_label(6, 8, [0, 1, 15])
        if where == "aug":
            if aug_masks:
                save_png_l(voc / f"SegmentationClassAug/{stem}.png", label)
        else:
            save_png_palette(voc / f"SegmentationClass/{stem}.png", label)
        save_jpeg(voc / f"JPEGImages/{stem}.jpg", random_image(6, 8))
    (sets / "val.txt").write_text("2007_000033\n")
    (sets / "train.txt").write_text("2007_000061\n2007_000063\n")
    if aug_list:
        (sets / "aug.txt").write_text("2008_000123\n2007_000061\n")  # overlaps train.txt, as mmseg's list does
    return voc


def _train_names(root: Path) -> list[str]:
    return sorted(s["name"] for s in build_dataset("voc_zs", root, "train"))


def test_default_is_train_plus_aug(tmp_path: Path) -> None:
    make_voc(tmp_path)
    prepare_voc(tmp_path, splits=["train"], progress=False)
    assert _train_names(tmp_path) == ["2007_000061", "2007_000063", "2008_000123"]


def test_missing_aug_list_is_an_error_that_says_what_to_download(tmp_path: Path) -> None:
    voc = make_voc(tmp_path, aug_list=False)
    with pytest.raises(FileNotFoundError, match="aug.txt") as err:
        prepare_voc(tmp_path, splits=["train"], progress=False)
    message = str(err.value)
    assert "SegmentationClassAug" in message and "--train-set train" in message and "10,582" in message
    assert not (voc / "annotations_detectron2/train").exists()  # nothing quietly prepared


def test_missing_sbd_masks_is_an_error(tmp_path: Path) -> None:
    make_voc(tmp_path, aug_masks=False)
    with pytest.raises(FileNotFoundError, match="SegmentationClassAug") as err:
        prepare_voc(tmp_path, splits=["train"], progress=False)
    assert "--train-set train" in str(err.value)


def test_val_alone_needs_no_aug_files(tmp_path: Path) -> None:
    make_voc(tmp_path, aug_list=False, aug_masks=False)
    assert prepare_voc(tmp_path, splits=["val"], progress=False).written == 1


def test_small_train_set_on_request_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    make_voc(tmp_path, aug_list=False, aug_masks=False)
    with caplog.at_level(logging.WARNING, logger="ovcore.data.prepare.voc"):
        prepare_voc(tmp_path, splits=["train"], train_set="train", progress=False)
    assert _train_names(tmp_path) == ["2007_000061", "2007_000063"]
    assert "10582" in caplog.text and "--train-set train" in caplog.text


def test_small_train_set_ignores_aug_list(tmp_path: Path) -> None:
    make_voc(tmp_path)
    prepare_voc(tmp_path, splits=["train"], train_set="train", progress=False)
    assert _train_names(tmp_path) == ["2007_000061", "2007_000063"]


def test_unknown_train_set(tmp_path: Path) -> None:
    make_voc(tmp_path)
    with pytest.raises(ValueError, match="--train-set 'sbd'"):
        prepare_voc(tmp_path, splits=["train"], train_set="sbd", progress=False)


def test_command_line_option(tmp_path: Path) -> None:
    make_voc(tmp_path, aug_list=False)
    status = main(["prepare", "voc", "--root", str(tmp_path), "--splits", "train", "--train-set", "train"])
    assert not status
    assert _train_names(tmp_path) == ["2007_000061", "2007_000063"]
    labels = [np.asarray(s["label"]) for s in build_dataset("voc_zs", tmp_path, "train")]
    assert all(lab.shape == (6, 8) for lab in labels)
