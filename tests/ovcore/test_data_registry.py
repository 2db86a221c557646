"""Registry, class names as package data, zero-shot splits and the inductive label remapping."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch

from ovcore.data import (
    compact_seen_labels,
    dataset_info,
    get_class_names,
    get_zeroshot_split,
    list_datasets,
    remap_unseen_to_ignore,
)

CONTRACT_NAMES = [
    "coco_stuff_171", "ade20k_150", "ade20k_847", "pascal_context_59", "pascal_context_459", "voc20", "voc20b",
    "voc_zs", "coco_stuff_zs", "context_zs",
]  # fmt: skip


def test_registry_has_contract_names_and_demo() -> None:
    names = list_datasets()
    assert set(CONTRACT_NAMES) <= set(names)
    assert "demo" in names
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("name", "num_classes", "num_names", "ignore"),
    [
        ("coco_stuff_171", 171, 171, 255),
        ("ade20k_150", 150, 150, 255),
        ("ade20k_847", 847, 847, 65535),
        ("pascal_context_59", 59, 59, 255),
        ("pascal_context_459", 459, 459, 459),
        ("voc20", 20, 20, 255),
        ("voc20b", 21, 59, 255),
        ("voc_zs", 20, 20, 255),
        ("coco_stuff_zs", 171, 171, 255),
        ("context_zs", 59, 59, 255),
        ("demo", 8, 8, 255),
    ],
)
def test_dataset_info(name: str, num_classes: int, num_names: int, ignore: int) -> None:
    info = dataset_info(name)
    assert (info.num_classes, info.ignore_index) == (num_classes, ignore)
    names = get_class_names(name)
    assert len(names) == num_names == len(info.class_names)
    # The ignore value never collides with a class id.
    assert not 0 <= info.ignore_index < info.num_classes
    assert {"val"} <= set(info.splits)


def test_class_names_are_verbatim_package_data() -> None:
    folder = resources.files("ovcore.data") / "classnames"
    for file_name in (
        "coco.json",
        "ade150.json",
        "ade847.json",
        "pc59.json",
        "pc459.json",
        "voc20.json",
        "voc20b.json",
        "ade847_full_ids.json",
    ):
        assert (folder / file_name).is_file(), file_name
    assert (resources.files("ovcore.data") / "zeroshot_splits.json").is_file()
    ade150 = get_class_names("ade20k_150")
    assert ade150[7] == "bed "  # the official file's trailing space is kept
    assert get_class_names("ade20k_847")[1] == "building, edifice"
    assert get_class_names("pascal_context_459")[430] == "unknown"
    assert get_class_names("voc20b")[:20] == get_class_names("voc20")
    assert get_class_names("coco_stuff_171")[:3] == ["person", "bicycle", "car"]
    ids = json.loads((folder / "ade847_full_ids.json").read_text())
    assert [e["trainId"] for e in ids] == list(range(847))
    # Mutating the returned list does not leak into the registry.
    get_class_names("voc20").append("x")
    assert len(get_class_names("voc20")) == 20


def test_unknown_names_raise() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*coco_stuff_171"):
        dataset_info("nope")
    with pytest.raises(ValueError, match="unknown zero-shot split"):
        get_zeroshot_split("voc20")


@pytest.mark.parametrize(
    ("name", "n_seen", "n_unseen", "unseen_names"),
    [
        ("voc_zs", 15, 5, {"pottedplant", "sheep", "sofa", "train", "tvmonitor"}),
        (
            "coco_stuff_zs",
            156,
            15,
            {
                "cow",
                "giraffe",
                "suitcase",
                "frisbee",
                "skateboard",
                "carrot",
                "scissors",
                "cardboard",
                "clouds",
                "grass",
                "playingfield",
                "river",
                "road",
                "tree",
                "wall-concrete",
            },
        ),
        (
            "context_zs",
            49,
            10,
            {"cow", "motorbike", "sofa", "cat", "boat", "fence", "bird", "tvmonitor", "keyboard", "aeroplane"},
        ),
    ],
)
def test_zeroshot_splits(name: str, n_seen: int, n_unseen: int, unseen_names: set[str]) -> None:
    split = get_zeroshot_split(name)
    assert (len(split.seen), len(split.unseen)) == (n_seen, n_unseen)
    assert set(split.unseen_names) == unseen_names
    assert sorted(split.seen + split.unseen) == list(range(split.num_classes))
    assert split.class_names == get_class_names(name)
    assert split.seen_names == [split.class_names[i] for i in split.seen]


def test_context_zs_uses_mmseg_names_in_sed_order() -> None:
    zs, sed = get_class_names("context_zs"), get_class_names("pascal_context_59")
    assert [i for i, (a, b) in enumerate(zip(zs, sed, strict=True)) if a != b] == [49]  # "table" vs "diningtable"
    assert get_zeroshot_split("context_zs").unseen == [0, 6, 7, 14, 19, 24, 31, 33, 48, 54]


def test_remap_unseen_to_ignore_tensor_and_numpy() -> None:
    label = torch.tensor([[0, 15, 3], [19, 255, 14]])
    out = remap_unseen_to_ignore(label, [15, 16, 17, 18, 19])
    assert out.tolist() == [[0, 255, 3], [255, 255, 14]]
    assert label.tolist() == [[0, 15, 3], [19, 255, 14]]  # input untouched
    out_np = remap_unseen_to_ignore(label.numpy().astype(np.uint8), [15, 19], ignore_index=200)
    assert out_np.dtype == np.uint8 and out_np.tolist() == [[0, 200, 3], [200, 255, 14]]


def test_compact_seen_labels() -> None:
    split = get_zeroshot_split("context_zs")
    label = torch.tensor([1, 0, 2, 58, 255, 6])
    out = compact_seen_labels(label, split.seen)
    assert out.tolist() == [0, 255, 1, 48, 255, 255]
    assert [split.seen[i] for i in out.tolist() if i != 255] == [1, 2, 58]
