"""Procedural demo dataset (determinism, classes, on-disk round trip) and the collate function."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ovcore.cli import main
from ovcore.data import (
    DEMO_CLASSES,
    DemoSegmentation,
    SEDTrainTransform,
    build_dataset,
    collate_samples,
    generate_demo_scene,
    get_class_names,
    write_demo_dataset,
)


def digest(index: int, **kwargs) -> str:
    image, label = generate_demo_scene(index, **kwargs)
    return hashlib.sha256(image.tobytes() + label.tobytes()).hexdigest()


def test_demo_classes() -> None:
    assert len(DEMO_CLASSES) == 8 and DEMO_CLASSES[0] == "sky" and "striped texture" in DEMO_CLASSES
    assert get_class_names("demo") == list(DEMO_CLASSES) == DemoSegmentation(2).class_names


def test_demo_scenes_are_bit_identical_across_runs_and_machines() -> None:
    # Golden digests: integer-only drawing from a PCG64 stream, so any platform must reproduce them.
    assert (
        digest(0, size=64, seed=0, split="train") == "6669a5f343b419ca20e5d34220e2e65a57498b9a6b7f90ca75706726a3abc1e3"
    )
    assert digest(5, size=(48, 80), seed=3, split="val") == (
        "522a6770a17dc4816a4b06ed29e19c3eb981fdb45a0d6befa322dc69670b2657"
    )


def test_demo_dataset_is_deterministic_and_varied() -> None:
    a, b = DemoSegmentation(6, size=64, seed=1), DemoSegmentation(6, size=64, seed=1)
    for i in range(6):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["label"], b[i]["label"])
    assert not torch.equal(a[0]["image"], a[1]["image"])
    assert not torch.equal(a[0]["image"], DemoSegmentation(1, size=64, seed=2)[0]["image"])
    assert not torch.equal(a[0]["image"], DemoSegmentation(1, size=64, seed=1, split="val")[0]["image"])
    sample = a[3]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.uint8
    assert sample["label"].dtype == torch.int64 and sample["name"] == "demo_train_000003"
    assert torch.equal(a[-1]["label"], a[5]["label"])
    with pytest.raises(IndexError):
        a[6]


def test_demo_covers_every_class_and_colours_match_classes() -> None:
    counts = torch.zeros(8, dtype=torch.int64)
    ds = DemoSegmentation(24, size=(64, 96), seed=0)
    for sample in ds:
        counts += sample["label"].flatten().bincount(minlength=8)
        image, label = sample["image"].int(), sample["label"]
        red = label == DEMO_CLASSES.index("red circle")
        if red.any():  # red objects are red
            assert (image[0][red] - image[2][red]).float().mean() > 100
    assert (counts > 0).all() and counts.sum() == 24 * 64 * 96


def test_demo_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        DemoSegmentation(2, split="test")
    with pytest.raises(ValueError, match="16x16"):
        DemoSegmentation(2, size=8)


def test_write_demo_dataset_reads_back_identically(tmp_path: Path) -> None:
    out = write_demo_dataset(tmp_path, num_train=3, num_val=2, size=32, seed=4)
    assert out == tmp_path / "demo" and (out / "info.json").is_file()
    for split, n in (("train", 3), ("val", 2)):
        disk = build_dataset("demo", tmp_path, split)
        memory = DemoSegmentation(n, size=32, seed=4, split=split)
        assert len(disk) == n
        for i in range(n):
            assert disk[i]["name"] == memory[i]["name"]
            assert torch.equal(disk[i]["image"], memory[i]["image"])
            assert torch.equal(disk[i]["label"], memory[i]["label"])
    # Idempotent: same parameters are fine, different ones need overwrite, which drops stale scenes.
    write_demo_dataset(tmp_path, num_train=3, num_val=2, size=32, seed=4)
    with pytest.raises(ValueError, match="overwrite"):
        write_demo_dataset(tmp_path, num_train=2, num_val=2, size=32, seed=4)
    write_demo_dataset(tmp_path, num_train=2, num_val=1, size=32, seed=5, overwrite=True)
    assert len(build_dataset("demo", tmp_path, "train")) == 2 and len(build_dataset("demo", tmp_path, "val")) == 1


def test_cli_demo_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo-data", "--root", str(tmp_path / "ds"), "--num-train", "2", "--num-val", "1", "--size", "24"])
    assert "2 train + 1 val scenes" in capsys.readouterr().out
    assert build_dataset("demo", tmp_path / "ds", "train")[1]["image"].shape == (3, 24, 24)


# ------------------------------------------------------------------------------------------------ collate
def test_collate_stacks_same_size_samples() -> None:
    ds = DemoSegmentation(4, size=32)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_samples)))
    assert batch["image"].shape == (3, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["label"].shape == (3, 32, 32) and batch["label"].dtype == torch.int64
    assert batch["name"] == ["demo_train_000000", "demo_train_000001", "demo_train_000002"]
    assert collate_samples([{"x": 1}, {"x": 2}])["x"].tolist() == [1, 2]


def test_collate_after_a_train_transform() -> None:
    ds = DemoSegmentation(4, size=48, transform=SEDTrainTransform(short_edge=64, max_size=128, crop_size=64))
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate_samples)))
    assert batch["image"].shape == (2, 3, 64, 64)


def test_collate_errors() -> None:
    a = {"image": torch.zeros(3, 4, 4, dtype=torch.uint8), "label": torch.zeros(4, 4), "name": "a"}
    b = {"image": torch.zeros(3, 4, 5, dtype=torch.uint8), "label": torch.zeros(4, 5), "name": "b"}
    with pytest.raises(ValueError, match=r"different shapes \(a: \(3, 4, 4\), b: \(3, 4, 5\)\).*batch_size=1"):
        collate_samples([a, b])
    with pytest.raises(ValueError, match="empty"):
        collate_samples([])
    with pytest.raises(ValueError, match="keys"):
        collate_samples([a, {"image": a["image"]}])
    assert np.array_equal(collate_samples([a, a])["label"].numpy(), np.zeros((2, 4, 4)))
