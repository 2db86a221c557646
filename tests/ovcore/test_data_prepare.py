"""``ovcore prepare`` conversions on tiny raw fixtures in the official raw formats, and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import (
    block_label,
    random_image,
    save_ade_index,
    save_ade_seg_png,
    save_detail_json,
    save_jpeg,
    save_mat_labelmap,
    save_png_l,
    save_png_palette,
)

from ovcore.cli import main
from ovcore.data import build_dataset, get_class_names, read_label
from ovcore.data.prepare import (
    prepare_ade20k_150,
    prepare_ade20k_847,
    prepare_coco_stuff,
    prepare_pascal_context_59,
    prepare_pascal_context_459,
    prepare_voc,
)
from ovcore.data.prepare.pascal_context import PC59_IDS
from ovcore.data.prepare.rle import counts_from_string, counts_to_string, rle_decode, rle_encode


# ------------------------------------------------------------------------------------------------ COCO-Stuff
def make_coco_raw(root: Path, split: str = "val2017") -> np.ndarray:
    raw = np.array([[0, 11, 12, 89, 90], [91, 181, 182, 255, 40]])
    save_png_l(root / f"coco-stuff/annotations/{split}/000000000139.png", raw)
    save_jpeg(root / f"coco-stuff/images/{split}/000000000139.jpg", random_image(2, 5))
    return raw


def test_prepare_coco_stuff(tmp_path: Path) -> None:
    make_coco_raw(tmp_path)
    report = prepare_coco_stuff(tmp_path, splits=["val"], progress=False)
    assert (report.written, report.skipped) == (1, 0)
    out = read_label(tmp_path / "coco-stuff/annotations_detectron2/val2017/000000000139.png")
    names = get_class_names("coco_stuff_171")
    assert out[0].tolist() == [0, 255, 11, 79, 255]
    assert out[1].tolist()[:4] == [80, 170, 255, 255]
    assert [names[i] for i in (0, 11, 79, 80, 170)] == ["person", "stop sign", "toothbrush", "banner", "wood"]
    assert names[out[1, 4]] == "skateboard"  # raw 0-based 40 = COCO category id 41
    ds = build_dataset("coco_stuff_171", tmp_path, "val")
    assert len(ds) == 1 and ds[0]["label"].shape == (2, 5)


def test_prepare_is_idempotent_and_overwrite_rewrites(tmp_path: Path) -> None:
    make_coco_raw(tmp_path)
    prepare_coco_stuff(tmp_path, splits=["val"], progress=False)
    out = tmp_path / "coco-stuff/annotations_detectron2/val2017/000000000139.png"
    out.write_bytes(b"stale")
    again = prepare_coco_stuff(tmp_path, splits=["val"], progress=False)
    assert (again.written, again.skipped) == (0, 1) and out.read_bytes() == b"stale"
    forced = prepare_coco_stuff(tmp_path, splits=["val"], overwrite=True, progress=False)
    assert forced.written == 1 and read_label(out).shape == (2, 5)
    assert not list(out.parent.glob(".*tmp"))  # atomic writes leave no temporaries


def test_prepare_errors_name_the_missing_download(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset root .*nope does not exist"):
        prepare_coco_stuff(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"coco-stuff/annotations/train2017 is missing.*stuffthingmaps"):
        prepare_coco_stuff(tmp_path, splits=["train"], progress=False)
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['test'\]"):
        prepare_coco_stuff(tmp_path, splits=["test"])
    with pytest.raises(FileNotFoundError, match=r"VOC2012 is missing.*VOCtrainval_11-May-2012"):
        prepare_voc(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ADE20K_2021_17_01 is missing"):
        prepare_ade20k_847(tmp_path)


# ------------------------------------------------------------------------------------------------ ADE20K
def test_prepare_ade20k_150(tmp_path: Path) -> None:
    raw = np.array([[0, 1, 2], [149, 150, 0]])
    save_png_l(tmp_path / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png", raw)
    save_jpeg(tmp_path / "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg", random_image(2, 3))
    report = prepare_ade20k_150(tmp_path, splits=["val"], progress=False)
    assert report.written == 1
    out = read_label(tmp_path / "ADEChallengeData2016/annotations_detectron2/validation/ADE_val_00000001.png")
    assert out.tolist() == [[255, 0, 1], [148, 149, 255]]
    assert build_dataset("ade20k_150", tmp_path)[0]["label"].tolist() == out.tolist()


def make_ade_full(root: Path, with_index: bool = True) -> dict[str, np.ndarray]:
    base = root / "ADE20K_2021_17_01"
    # ADE full object ids: 2978 wall -> 0, 312 building -> 1, 3113 alarm -> 692, 5 and 0 are not among the 847.
    entries = {
        ("images/ADE/validation/urban/street", "ADE_val_00000001.jpg"): block_label(24, 32, [2978, 312, 5, 0]),
        ("images/ADE/validation/home/kitchen", "ADE_val_00000002.jpg"): block_label(520, 600, [3113, 2978]),
        ("images/ADE/training/urban/street", "ADE_train_00000001.jpg"): block_label(20, 20, [312]),
    }
    for (folder, name), classes in entries.items():
        save_jpeg(base / folder / name, random_image(*classes.shape))
        save_ade_seg_png(base / folder / name.replace(".jpg", "_seg.png"), classes)
        (base / folder / name.replace(".jpg", ".json")).write_text("{}")
    if with_index:
        save_ade_index(
            base / "index_ade20k.pkl", [f"ADE20K_2021_17_01/{f}" for f, _ in entries], [n for _, n in entries]
        )
    return {Path(n).stem: c for (_, n), c in entries.items()}


@pytest.mark.parametrize("with_index", [True, False])
def test_prepare_ade20k_847(tmp_path: Path, with_index: bool) -> None:
    make_ade_full(tmp_path, with_index)
    report = prepare_ade20k_847(tmp_path, progress=False)
    assert report.written == 2  # validation only, like the official script
    base = tmp_path / "ADE20K_2021_17_01"
    small = read_label(base / "annotations_detectron2/validation/ADE_val_00000001.tif")
    assert small.shape == (24, 32)
    assert np.unique(small).tolist() == [0, 1, 65535]
    assert small[:, :8].tolist() == [[0] * 8] * 24 and small[:, 16:].max() == 65535
    # The shorter side > 512 is resized to 512 (600 * 512 / 520 = 590.8 -> 591), label nearest.
    big = read_label(base / "annotations_detectron2/validation/ADE_val_00000002.tif")
    assert big.shape == (512, 591)
    assert np.unique(big).tolist() == [0, 692]
    assert not (base / "annotations_detectron2/training").exists()
    ds = build_dataset("ade20k_847", tmp_path)
    assert [s["image"].shape for s in ds] == [(3, 24, 32), (3, 512, 591)]
    assert ds[0]["label"].max() == 65535
    train = prepare_ade20k_847(tmp_path, splits=["train"], progress=False)
    assert train.written == 1 and len(build_dataset("ade20k_847", tmp_path, "train")) == 1


# ------------------------------------------------------------------------------------------------ PASCAL Context
def make_detail(root: Path) -> dict[str, np.ndarray]:
    """Two val images and one train image; masks painted in order, later ones over earlier ones."""
    h, w = 6, 8
    images, annos, expected = [], [], {}
    specs = {
        ("2008_000002", "val"): [(2, (slice(0, 6), slice(0, 4))), (458, (slice(0, 3), slice(2, 8))),
                                 (1, (slice(5, 6), slice(0, 8)))],
        ("2008_000003", "val"): [(85, (slice(0, 6), slice(0, 8)))],
        ("2008_000004", "train"): [(9, (slice(1, 4), slice(1, 4)))],
    }  # fmt: skip
    lut = {2: 0, 458: 58, 85: 18, 9: 1}
    for k, ((stem, phase), masks) in enumerate(specs.items()):
        image_id = 2008000002 + k
        images.append({"image_id": image_id, "file_name": f"{stem}.jpg", "phase": phase, "height": h, "width": w})
        ids = np.zeros((h, w), dtype=np.int64)
        for category, region in masks:
            mask = np.zeros((h, w), bool)
            mask[region] = True
            ids[mask] = category
            annos.append({"image_id": image_id, "category_id": category, "segmentation": rle_encode(mask)})
        expected[stem] = np.vectorize(lambda v: lut.get(v, 255))(ids)
        save_jpeg(root / f"VOCdevkit/VOC2010/JPEGImages/{stem}.jpg", random_image(h, w))
    save_detail_json(root / "VOCdevkit/VOC2010/trainval_merged.json", images, annos)
    return expected


def test_prepare_pascal_context_59(tmp_path: Path) -> None:
    expected = make_detail(tmp_path)
    names = get_class_names("pascal_context_59")
    assert (names[0], names[58], names[18], names[1]) == ("aeroplane", "wood", "computer", "bag")
    # The 59 ids index the 459 names (1-based), except PC-59's "diningtable" for PC-459's "table".
    pc459 = get_class_names("pascal_context_459")
    renamed = [(n, pc459[i - 1]) for n, i in zip(names, PC59_IDS, strict=True) if n != pc459[i - 1]]
    assert renamed == [("diningtable", "table")]
    report = prepare_pascal_context_59(tmp_path, progress=False)
    assert report.written == 2
    out_dir = tmp_path / "VOCdevkit/VOC2010/annotations_detectron2/pc59_val"
    for stem in ("2008_000002", "2008_000003"):
        assert read_label(out_dir / f"{stem}.png").tolist() == expected[stem].tolist()
    assert len(build_dataset("pascal_context_59", tmp_path)) == 2
    prepare_pascal_context_59(tmp_path, splits=["train"], progress=False)
    train = build_dataset("context_zs", tmp_path, "train")
    assert len(train) == 1 and train[0]["label"].tolist() == expected["2008_000004"].tolist()


def test_prepare_pascal_context_459(tmp_path: Path) -> None:
    voc = tmp_path / "VOCdevkit/VOC2010"
    maps = {"2008_000002": block_label(6, 8, [1, 2, 459]), "2008_000003": block_label(6, 8, [431, 18])}
    for stem, label_map in maps.items():
        save_mat_labelmap(voc / f"trainval/{stem}.mat", label_map)
        save_jpeg(voc / f"JPEGImages/{stem}.jpg", random_image(6, 8))
    save_mat_labelmap(voc / "trainval/2008_000009.mat", np.ones((6, 8)))  # not in the val list
    (voc / "pascalcontext_val.txt").write_text("2008_000002\n2008_000003\n")
    report = prepare_pascal_context_459(tmp_path, progress=False)
    assert report.written == 2
    ds = build_dataset("pascal_context_459", tmp_path)
    assert [s["name"] for s in ds] == ["2008_000002", "2008_000003"]
    assert ds[0]["label"].tolist() == (maps["2008_000002"] - 1).tolist()
    assert get_class_names("pascal_context_459")[ds[1]["label"][0, 0]] == "unknown"


def test_prepare_pascal_context_459_needs_the_id_list(tmp_path: Path) -> None:
    voc = tmp_path / "VOCdevkit/VOC2010"
    save_mat_labelmap(voc / "trainval/2008_000002.mat", np.ones((2, 2)))
    with pytest.raises(FileNotFoundError, match=r"pascalcontext_val.txt is missing"):
        prepare_pascal_context_459(tmp_path, progress=False)
    (voc / "pascalcontext_val.txt").write_text("2008_000002\n2008_000099\n")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 validation ids have no .mat .*2008_000099"):
        prepare_pascal_context_459(tmp_path, progress=False)


# ------------------------------------------------------------------------------------------------ VOC
def make_voc(root: Path) -> Path:
    voc = root / "VOCdevkit/VOC2012"
    sets = voc / "ImageSets/Segmentation"
    sets.mkdir(parents=True)
    labels = {
        "2007_000033": (block_label(6, 8, [0, 1, 20, 255]), "val"),
        "2007_000042": (np.zeros((6, 8)), "val"),  # background only: dropped from PAS-20
        "2007_000061": (block_label(6, 8, [0, 16]), "train"),
        "2008_000123": (block_label(6, 8, [15, 19, 0]), "aug"),
    }
    for stem, (label, where) in labels.items():
        if where == "aug":
            save_png_l(voc / f"SegmentationClassAug/{stem}.png", label)  # SBD conversion: grey PNGs
        else:
            save_png_palette(voc / f"SegmentationClass/{stem}.png", label)  # VOC: palette PNGs
        save_jpeg(voc / f"JPEGImages/{stem}.jpg", random_image(6, 8))
    save_jpeg(voc / "JPEGImages/2007_999999.jpg", random_image(4, 4))  # JPEGImages holds every image
    (sets / "val.txt").write_text("2007_000033\n2007_000042\n")
    (sets / "train.txt").write_text("2007_000061\n")
    (sets / "aug.txt").write_text("2008_000123\n")
    return voc


def test_prepare_voc(tmp_path: Path) -> None:
    voc = make_voc(tmp_path)
    report = prepare_voc(tmp_path, progress=False)
    assert (report.written, report.dropped) == (1, 1)
    assert not (voc / "annotations_detectron2/val/2007_000042.png").exists()
    assert read_label(voc / "annotations_detectron2_bg/val/2007_000042.png").tolist() == [[20] * 8] * 6
    pas20 = build_dataset("voc20", tmp_path)
    assert [s["name"] for s in pas20] == ["2007_000033"]
    assert pas20[0]["label"][0].tolist() == [255, 255, 0, 0, 19, 19, 255, 255]
    pas20b = build_dataset("voc20b", tmp_path)
    assert len(pas20b) == 2 and pas20b[0]["label"][0].tolist() == [20, 20, 0, 0, 19, 19, 255, 255]

    prepare_voc(tmp_path, splits=["train"], progress=False)
    train = build_dataset("voc_zs", tmp_path, "train")
    assert [s["name"] for s in train] == ["2007_000061", "2008_000123"]
    assert train[0]["label"].unique().tolist() == [255]  # background ignored, class 16 ("sheep") unseen
    assert train[1]["label"].unique().tolist() == [14, 255]  # raw 15 -> 14 (person) seen, raw 19 -> 18 unseen


def test_prepare_voc_rejects_unexpected_values(tmp_path: Path) -> None:
    voc = make_voc(tmp_path)
    save_png_palette(voc / "SegmentationClass/2007_000033.png", block_label(6, 8, [0, 21]))
    with pytest.raises(ValueError, match=r"2007_000033.png: unexpected VOC label values \[21\]"):
        prepare_voc(tmp_path, progress=False)


# ------------------------------------------------------------------------------------------------ RLE codec
@pytest.mark.parametrize(
    ("counts", "string"),
    [([0, 4], "04"), ([1, 2, 1], "121"), ([1, 1, 1, 1], "1110"), ([0, 5, 1, 2], "051M"), ([100], "T3")],
)
def test_rle_string_codec_known_answers(counts: list[int], string: str) -> None:
    # Hand-computed with pycocotools' rleToString algorithm (deltas after the third run, 5-bit groups + 48).
    assert counts_to_string(counts) == string
    assert counts_from_string(string) == counts


def test_rle_mask_roundtrip_is_column_major() -> None:
    mask = np.zeros((2, 3), bool)
    mask[1, 0] = mask[0, 2] = True  # column-major order: F T F F T F
    rle = rle_encode(mask)
    assert counts_from_string(rle["counts"]) == [1, 1, 2, 1, 1]
    assert rle_decode(rle).tolist() == mask.tolist()
    assert rle_decode({"size": [2, 3], "counts": [1, 1, 2, 1, 1]}).tolist() == mask.tolist()
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.random((7, 11)) > 0.5
        assert np.array_equal(rle_decode(rle_encode(m)), m)


# ------------------------------------------------------------------------------------------------ command line
def test_cli_prepare_and_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_coco_raw(tmp_path)
    main(["prepare", "coco_stuff", "--root", str(tmp_path), "--splits", "val"])
    assert "coco_stuff: 1 written" in capsys.readouterr().out
    main(["prepare", "coco_stuff", "--root", str(tmp_path), "--splits", "val"])
    assert "0 written, 1 already present" in capsys.readouterr().out
    main(["datasets", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "coco_stuff_171" in out and "val:ready" in out and "ovcore prepare ade20k_150" in out
    with pytest.raises(SystemExit):
        main(["prepare", "nope"])


def test_cli_prepare_voc_with_worker_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_voc(tmp_path)
    main(["prepare", "voc", "--root", str(tmp_path), "--splits", "val", "train", "--workers", "2"])
    assert "voc: 3 written, 0 already present (skipped), 1 dropped" in capsys.readouterr().out
    assert torch.equal(
        build_dataset("voc20", tmp_path)[0]["label"][0], torch.tensor([255, 255, 0, 0, 19, 19, 255, 255])
    )


def test_cli_commands_can_be_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    # ovcore.cli.COMMANDS is the documented extension point: a dataclass with run() becomes a sub-command.
    import dataclasses

    from ovcore.cli import COMMANDS

    greeted = []

    @dataclasses.dataclass
    class Hello:
        who: str = "world"
        """Who to greet."""

        def run(self) -> None:
            greeted.append(self.who)

    monkeypatch.setitem(COMMANDS, "hello", Hello)
    main(["hello", "--who", "ovcore"])
    assert greeted == ["ovcore"]
