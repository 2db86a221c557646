"""Readers of the prepared layouts, on tiny fixtures written in the official formats, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import block_label, save_jpeg, save_png_l, save_tiff_u16, write_pairs

from ovcore.data import build_dataset, dataset_info, get_zeroshot_split, read_label

# name -> (image dir, label dir, label format, a valid label) for the val split.
LAYOUTS = {
    "coco_stuff_171": ("coco-stuff/images/val2017", "coco-stuff/annotations_detectron2/val2017", "png",
                       block_label(12, 16, [0, 170, 80, 255])),
    "ade20k_150": ("ADEChallengeData2016/images/validation", "ADEChallengeData2016/annotations_detectron2/validation",
                   "png", block_label(12, 16, [0, 149, 255])),
    "ade20k_847": ("ADE20K_2021_17_01/images_detectron2/validation",
                   "ADE20K_2021_17_01/annotations_detectron2/validation", "tif",
                   block_label(12, 16, [0, 255, 300, 846, 65535])),
    "pascal_context_59": ("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc59_val", "png",
                          block_label(12, 16, [0, 58, 255])),
    "pascal_context_459": ("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc459_val",
                           "tif", block_label(12, 16, [0, 255, 458, 430])),
    "voc20": ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2/val", "png",
              block_label(12, 16, [0, 19, 255])),
    "voc20b": ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2_bg/val", "png",
               block_label(12, 16, [0, 19, 20, 255])),
}  # fmt: skip


def make_layout(root: Path, name: str, stems=("a", "b"), extra_images: int = 0) -> np.ndarray:
    image_dir, label_dir, fmt, label = LAYOUTS[name]
    write_pairs(
        root / image_dir, root / label_dir, {s: label for s in stems}, label_format=fmt, extra_images=extra_images
    )
    return label


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_reader_reads_prepared_layout(tmp_path: Path, name: str) -> None:
    label = make_layout(tmp_path, name, extra_images=2)
    ds = build_dataset(name, tmp_path, "val")
    assert len(ds) == 2  # extra images without labels are skipped (intersection)
    sample = ds[1]
    assert sample["name"] == "b"
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 12, 16)
    assert sample["label"].dtype == torch.int64
    assert torch.equal(sample["label"], torch.from_numpy(label))  # the ignore value is kept as is
    assert ds.class_names == dataset_info(name).class_names
    # "test" is an alias of "val".
    assert len(build_dataset(name, tmp_path, "test")) == 2


def test_palette_png_labels_read_as_indices(tmp_path: Path) -> None:
    label = block_label(10, 10, [0, 5, 19, 255])
    write_pairs(
        tmp_path / "VOCdevkit/VOC2012/JPEGImages",
        tmp_path / "VOCdevkit/VOC2012/annotations_detectron2/val",
        {"x": label},
        label_format="palette",
    )
    assert torch.equal(build_dataset("voc20", tmp_path)[0]["label"], torch.from_numpy(label))


def test_tiff_keeps_uint16_values(tmp_path: Path) -> None:
    label = np.array([[0, 65535], [846, 1000]])
    path = save_tiff_u16(tmp_path / "x.tif", label)
    assert read_label(path).tolist() == label.tolist()


def test_transform_is_applied(tmp_path: Path) -> None:
    make_layout(tmp_path, "ade20k_150")
    ds = build_dataset("ade20k_150", tmp_path, transform=lambda s: {**s, "name": s["name"].upper()})
    assert ds[0]["name"] == "A"


def test_default_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_layout(tmp_path, "coco_stuff_171")
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    assert len(build_dataset("coco_stuff_171", split="val")) == 2
    monkeypatch.delenv("DETECTRON2_DATASETS")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").mkdir()
    with pytest.raises(FileNotFoundError, match=r"datasets/coco-stuff/annotations_detectron2/val2017"):
        build_dataset("coco_stuff_171")


# ------------------------------------------------------------------------------------------------ zero-shot
@pytest.mark.parametrize(
    ("name", "layout", "values"),
    [
        (
            "voc_zs",
            ("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/annotations_detectron2/{}"),
            [0, 14, 15, 19, 255],
        ),
        (
            "coco_stuff_zs",
            ("coco-stuff/images/{}2017", "coco-stuff/annotations_detectron2/{}2017"),
            [0, 19, 23, 160, 170, 255],
        ),
        (
            "context_zs",
            ("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/annotations_detectron2/pc59_{}"),
            [0, 1, 6, 54, 58, 255],
        ),
    ],
)
def test_zeroshot_train_ignores_unseen_and_val_keeps_all(tmp_path: Path, name: str, layout, values) -> None:
    label = block_label(8, 24, values)
    for split in ("train", "val"):
        write_pairs(tmp_path / layout[0].format(split), tmp_path / layout[1].format(split), {f"{split}_0": label})
    zs = get_zeroshot_split(name)
    train = build_dataset(name, tmp_path, "train")[0]["label"]
    val = build_dataset(name, tmp_path, "val")[0]["label"]
    assert torch.equal(val, torch.from_numpy(label))
    unseen = torch.isin(torch.from_numpy(label), torch.tensor(zs.unseen))
    assert unseen.any() and (~unseen & (val != 255)).any()
    assert (train[unseen] == 255).all()
    assert torch.equal(train[~unseen], val[~unseen])
    # Compact ids: seen classes renumbered 0..Ns-1, for a training vocabulary of the seen names only.
    compact_ds = build_dataset(name, tmp_path, "train", compact_seen=True)
    compact = compact_ds[0]["label"]
    assert compact_ds.class_names == zs.seen_names
    seen_mask = compact != 255
    assert torch.equal(torch.tensor(zs.seen)[compact[seen_mask]], val[seen_mask])


def test_zeroshot_dataset_registered_under_a_new_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # build_dataset must find the split through DatasetInfo.zeroshot, not through the built-in registry names.
    from dataclasses import replace

    from ovcore.data import catalog

    info = replace(dataset_info("voc_zs"), name="my_voc_zs")
    monkeypatch.setitem(catalog._DATASETS, info.name, info)  # removed again after the test
    label = block_label(8, 8, [0, 15])
    write_pairs(tmp_path / info.splits["train"].image_dir, tmp_path / info.splits["train"].label_dir, {"t": label})
    out = build_dataset("my_voc_zs", tmp_path, "train")[0]["label"]
    assert out.unique().tolist() == [0, 255]  # raw 15 ("pottedplant") is unseen in the VOC split


def test_zeroshot_remap_happens_after_the_transform(tmp_path: Path) -> None:
    label = block_label(8, 8, [0, 15])
    write_pairs(
        tmp_path / "VOCdevkit/VOC2012/JPEGImages",
        tmp_path / "VOCdevkit/VOC2012/annotations_detectron2/train",
        {"t": label},
    )
    seen_by_transform = []

    def spy(sample):
        seen_by_transform.append(sample["label"].unique().tolist())
        return sample

    out = build_dataset("voc_zs", tmp_path, "train", transform=spy)[0]["label"]
    assert seen_by_transform == [[0, 15]] and out.unique().tolist() == [0, 255]


# ------------------------------------------------------------------------------------------------ errors
def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset root .*nope does not exist.*DETECTRON2_DATASETS"):
        build_dataset("ade20k_150", tmp_path / "nope")


@pytest.mark.parametrize(
    ("name", "split", "command"),
    [
        ("coco_stuff_171", "val", "ovcore prepare coco_stuff"),
        ("ade20k_847", "val", "ovcore prepare ade20k_847"),
        ("pascal_context_59", "train", "ovcore prepare pascal_context_59 --root {root} --splits train"),
        ("voc20b", "val", "ovcore prepare voc"),
        ("voc_zs", "train", "ovcore prepare voc --root {root} --splits train"),
        ("demo", "val", "ovcore demo-data"),
    ],
)
def test_missing_split_folder_names_folder_and_command(tmp_path: Path, name: str, split: str, command: str) -> None:
    label_dir = str(tmp_path / dataset_info(name).splits[split].label_dir)
    with pytest.raises(FileNotFoundError) as err:
        build_dataset(name, tmp_path, split)
    message = str(err.value)
    assert f"label folder {label_dir} does not exist" in message
    assert command.format(root=tmp_path) in message


def test_missing_image_folder(tmp_path: Path) -> None:
    save_png_l(tmp_path / "ADEChallengeData2016/annotations_detectron2/validation/x.png", np.zeros((4, 4)))
    with pytest.raises(FileNotFoundError, match=r"image folder .*images/validation does not exist"):
        build_dataset("ade20k_150", tmp_path)


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no split 'train'.*available: val"):
        build_dataset("pascal_context_459", tmp_path, "train")


def test_empty_label_folder(tmp_path: Path) -> None:
    (tmp_path / "ADEChallengeData2016/annotations_detectron2/validation").mkdir(parents=True)
    (tmp_path / "ADEChallengeData2016/images/validation").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"contains no \*.png file.*ovcore prepare ade20k_150"):
        build_dataset("ade20k_150", tmp_path)


def test_empty_intersection_reports_counts_and_examples(tmp_path: Path) -> None:
    img, lab = (
        tmp_path / "ADEChallengeData2016/images/validation",
        tmp_path / "ADEChallengeData2016/annotations_detectron2/validation",
    )
    for i in range(5):
        save_jpeg(img / f"ADE_val_{i}.jpg", np.zeros((4, 4, 3), np.uint8))
    for i in range(2):
        save_png_l(lab / f"other_{i}.png", np.zeros((4, 4)))
    with pytest.raises(ValueError) as err:
        build_dataset("ade20k_150", tmp_path)
    message = str(err.value)
    assert "no image/label pair" in message and "paired by basename" in message
    assert "2 *.png labels" in message and "5 *.jpg images" in message
    assert "other_0" in message and "ADE_val_0" in message


def test_labels_without_images(tmp_path: Path) -> None:
    make_layout(tmp_path, "voc20", stems=("a",))
    lab = tmp_path / LAYOUTS["voc20"][1]
    for stem in ("orphan1", "orphan2", "orphan3", "orphan4"):
        save_png_l(lab / f"{stem}.png", np.zeros((12, 16)))
    with pytest.raises(ValueError, match=r"4 of 5 labels .* have no \*.jpg image .*orphan1, orphan2, orphan3, \.\.\."):
        build_dataset("voc20", tmp_path)
    assert len(build_dataset("voc20", tmp_path, allow_unpaired_labels=True)) == 1


def test_corrupt_image_and_label_name_the_file(tmp_path: Path) -> None:
    make_layout(tmp_path, "coco_stuff_171", stems=("a", "b"))
    image_dir, label_dir = (tmp_path / d for d in LAYOUTS["coco_stuff_171"][:2])
    (image_dir / "a.jpg").write_bytes(b"not a jpeg at all")
    (label_dir / "b.png").write_bytes((label_dir / "b.png").read_bytes()[:40])  # truncated PNG
    ds = build_dataset("coco_stuff_171", tmp_path)
    with pytest.raises(ValueError, match=r"cannot read image file .*a\.jpg"):
        ds[0]
    with pytest.raises(ValueError, match=r"cannot read label file .*b\.png"):
        ds[1]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_tiff_names_the_file(tmp_path: Path) -> None:
    make_layout(tmp_path, "pascal_context_459", stems=("a",))
    path = tmp_path / LAYOUTS["pascal_context_459"][1] / "a.tif"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"cannot read label file .*a\.tif"):
        build_dataset("pascal_context_459", tmp_path)[0]


def test_colour_label_is_rejected(tmp_path: Path) -> None:
    make_layout(tmp_path, "voc20", stems=("a",))
    from PIL import Image

    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / LAYOUTS["voc20"][1] / "a.png")
    with pytest.raises(ValueError, match=r"a\.png.*single-channel.*mode 'RGB'"):
        build_dataset("voc20", tmp_path)[0]


@pytest.mark.parametrize(
    ("name", "bad"),
    [("ade20k_150", [150, 200]), ("ade20k_847", [847, 65534]), ("pascal_context_459", [459 + 1]), ("voc20", [20])],
)
def test_label_values_outside_class_range(tmp_path: Path, name: str, bad: list[int]) -> None:
    make_layout(tmp_path, name, stems=("a", "b"))
    image_dir, label_dir, fmt, label = LAYOUTS[name]
    broken = label.copy()
    broken[-1, : len(bad)] = bad
    path = tmp_path / label_dir / f"b.{fmt}"
    (save_tiff_u16 if fmt == "tif" else save_png_l)(path, broken)
    ds = build_dataset(name, tmp_path)
    ds[0]  # a valid label reads fine
    info = dataset_info(name)
    with pytest.raises(ValueError) as err:
        ds[1]
    message = str(err.value)
    assert str(path) in message and f"0..{info.num_classes - 1} (ignore {info.ignore_index})" in message
    assert all(str(v) in message for v in bad)
    assert "ovcore prepare" in message
    assert len(build_dataset(name, tmp_path, check_labels=False)[1]["label"]) == 12


def test_image_label_size_mismatch(tmp_path: Path) -> None:
    make_layout(tmp_path, "voc20", stems=("a",))
    save_png_l(tmp_path / LAYOUTS["voc20"][1] / "a.png", np.zeros((5, 7)))
    with pytest.raises(ValueError, match=r"a\.jpg is 16x12 \(WxH\) but its label .*a\.png is 7x5"):
        build_dataset("voc20", tmp_path)[0]


def test_exif_orientation_is_applied_unless_the_label_fits_the_stored_pixels(tmp_path: Path, caplog) -> None:
    from PIL import Image

    img_dir, lab_dir = tmp_path / LAYOUTS["voc20"][0], tmp_path / LAYOUTS["voc20"][1]
    img_dir.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored 16x12 (WxH) shows as 12x16
    for stem in ("rotated", "stored"):
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(img_dir / f"{stem}.jpg", exif=exif)
    save_png_l(lab_dir / "rotated.png", np.zeros((16, 12)))  # label drawn on the displayed image
    save_png_l(lab_dir / "stored.png", np.zeros((12, 16)))  # label drawn on the stored pixels
    ds = build_dataset("voc20", tmp_path)
    assert ds[0]["image"].shape == (3, 16, 12)
    with caplog.at_level("WARNING"):
        assert ds[1]["image"].shape == (3, 12, 16)
    assert "EXIF orientation ignored" in caplog.text
