"""The predict commands' outputs for other tools: --save-probs (npz / png), --rle-json (COCO RLE), flat memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovcore.cmd.outputs import RleJsonWriter, class_file_name
from ovcore.data.prepare.rle import counts_from_string, label_map_rles, rle_decode, rle_encode

VOCAB = "sky, grass|lawn, a cat"


def _write_images(folder: Path, n: int, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = "sub/" if i % 2 else ""
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{sub}im{i:03d}.png")


def _predict(argv: list[str]) -> int:
    from maskclip.cli.commands import predict_main

    return predict_main([*argv, "--preset", "maskclip_vit_tiny", "--device", "cpu", "--no-progress"])


# ------------------------------------------------------------------------------------------------------------ RLE
def test_label_map_rles_hand_worked_example() -> None:
    # Column-major pixels of [[0, 1, 1], [2, 1, 0]]: 0 2 1 1 1 0.
    labels = np.array([[0, 1, 1], [2, 1, 0]])
    got = {c: (rle["counts"], area) for c, rle, area in label_map_rles(labels)}
    # class 0: runs 0,1,4,1 -> "0", "1", "4", then 1 - 1 = 0 stored as a delta to two runs earlier -> "0140"
    assert got == {0: ("0140", 2), 1: ("231", 3), 2: ("114", 1)}
    assert counts_from_string("0140") == [0, 1, 4, 1]


def test_label_map_rles_match_the_mask_encoder_and_round_trip() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, (37, 23))
    labels[:10] = 3  # long runs (counts > 31, negative deltas) as well as single pixels
    rles = label_map_rles(labels)
    assert [c for c, _, _ in rles] == sorted(np.unique(labels).tolist())
    for class_id, rle, area in rles:
        assert rle == rle_encode(labels == class_id)
        assert np.array_equal(rle_decode(rle), labels == class_id)
        assert area == int((labels == class_id).sum())


def test_pycocotools_agrees_when_installed() -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    labels = np.random.default_rng(2).integers(0, 3, (19, 31))
    for class_id, rle, _ in label_map_rles(labels):
        ref = mask_api.encode(np.asfortranarray((labels == class_id).astype(np.uint8)))
        assert rle["counts"] == ref["counts"].decode("ascii")


def test_rle_writer_discards_an_unfinished_file(tmp_path: Path) -> None:
    path = tmp_path / "rle.json"
    with pytest.raises(KeyError), RleJsonWriter(path, ["a", "b"]) as writer:
        writer.add("x", np.zeros((2, 2), dtype=np.int64))
        raise KeyError("boom")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_class_file_names_sort_and_are_safe() -> None:
    assert class_file_name(3, "grass, lawn", 150) == "003_grass.png"
    assert class_file_name(0, "a cat/dog?", 2) == "0_a_cat_dog.png"
    assert class_file_name(1, "???", 2) == "1_class.png"


# ---------------------------------------------------------------------------------------------------- the command
def test_predict_writes_probs_and_rle_json(tmp_path: Path) -> None:
    _write_images(tmp_path / "images", 3)
    out = tmp_path / "pred"
    assert _predict([str(tmp_path / "images"), "--vocabulary", VOCAB, "--output-dir", str(out), "--save-probs",
                     "npz", "--rle-json", str(out / "rle.json"), "--no-overlays", "--batch-size", "2"]) == 0
    data = json.loads((out / "rle.json").read_text())
    assert data["categories"] == [{"id": 0, "name": "sky"}, {"id": 1, "name": "grass, lawn"},
                                  {"id": 2, "name": "a cat"}]
    records = json.loads((out / "predictions.json").read_text())["images"]
    assert len(records) == 3 and {i["name"] for i in data["images"]} == {r["name"] for r in records}
    for record in records:
        stem = record["name"]
        labels = np.asarray(Image.open(record["labels"]))
        with np.load(record["probs"]) as npz:
            probs, names = npz["probs"], npz["class_names"].tolist()
        assert record["probs"] == str(out / f"{stem}_probs.npz")
        assert probs.dtype == np.float16 and probs.shape == (3, *labels.shape) and names == ["sky", "grass, lawn",
                                                                                              "a cat"]
        assert (probs.astype(np.float32).argmax(0) == labels).mean() > 0.99  # float16 may break near-ties
        mine = [a for a in data["annotations"] if a["image"] == stem]
        assert sum(a["area"] for a in mine) == labels.size
        for a in mine:
            assert a["segmentation"]["size"] == list(labels.shape)
            assert a["category_name"] == names[a["category_id"]]
            assert np.array_equal(rle_decode(a["segmentation"]), labels == a["category_id"])
    assert [a["id"] for a in data["annotations"]] == list(range(1, len(data["annotations"]) + 1))


def test_predict_probs_as_pngs(tmp_path: Path) -> None:
    _write_images(tmp_path / "images", 1)
    out = tmp_path / "pred"
    assert _predict([str(tmp_path / "images"), "--vocabulary", VOCAB, "--output-dir", str(out), "--save-probs",
                     "png", "--no-overlays"]) == 0
    folder = out / "im000_probs"
    assert sorted(p.name for p in folder.iterdir()) == ["0_sky.png", "1_grass.png", "2_a_cat.png"]
    grey = np.stack([np.asarray(Image.open(folder / n)) for n in ("0_sky.png", "1_grass.png", "2_a_cat.png")])
    assert grey.dtype == np.uint8 and grey.shape == (3, 32, 32)
    # maskclip's probabilities are a softmax: the three PNGs add up to 255 up to rounding.
    assert np.abs(grey.astype(int).sum(0) - 255).max() <= 2


def test_rle_json_given_a_folder_is_refused_before_the_model(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    _write_images(tmp_path / "images", 1)
    assert _predict([str(tmp_path / "images"), "--vocabulary", VOCAB, "--output-dir", str(tmp_path / "o"),
                     "--rle-json", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "--rle-json" in err and "is a folder" in err


# ------------------------------------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc")
def test_memory_stays_flat_over_hundreds_of_images(tmp_path: Path) -> None:
    import torch

    from ovcore.cmd.images import collect_images, output_stems
    from ovcore.cmd.model import load_with_method
    from ovcore.cmd.options import ModelOptions
    from ovcore.cmd.predict import predict_images

    _write_images(tmp_path / "images", 300, size=64)
    paths = collect_images([tmp_path / "images"])
    stems = output_stems(paths, [tmp_path / "images"])
    loaded = load_with_method("maskclip", ModelOptions(preset="maskclip_vit_tiny"), "cpu")
    names = ["sky", "grass", "a cat"]

    def run(n: int, out: Path) -> list[dict]:
        with RleJsonWriter(out / "rle.json", names) as rle:
            return predict_images(loaded, paths[:n], stems[:n], names, out, batch_size=8, overlays=False,
                                  save_probs="npz", rle=rle)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: one thread is several times faster than two on a busy machine
    try:
        run(40, tmp_path / "warm")  # allocator pools and caches settle on the first batches
        before = _rss_bytes()
        records = run(300, tmp_path / "all")
        growth = _rss_bytes() - before
    finally:
        torch.set_num_threads(threads)
    assert len(records) == 300 and all(_plain(r) for r in records)  # nothing per image but numbers and strings
    # Keeping each image's probabilities, label map and pixels would add ~28 MB (93 kB per 64 x 64 image).
    assert growth < 8 * 2**20, f"resident memory grew by {growth / 2**20:.1f} MiB over 300 images"
