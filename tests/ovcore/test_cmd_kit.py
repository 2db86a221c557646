"""The command-line kit: --vocabulary parsing, image collection and batching, tables (ovcore.cmd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovcore.cmd.images import batched, collect_images, output_stems
from ovcore.cmd.tables import cell, format_table
from ovcore.cmd.vocabulary import resolve_vocabulary


def test_comma_list_with_synonyms() -> None:
    assert resolve_vocabulary(" cat, dog ,grass|lawn ") == ["cat", "dog", "grass, lawn"]
    assert resolve_vocabulary("cat") == ["cat"]


def test_dataset_and_benchmark_names_give_their_class_lists() -> None:
    a150 = resolve_vocabulary("ade20k_150")
    assert len(a150) == 150 and resolve_vocabulary("a150") == a150
    assert len(resolve_vocabulary("voc20")) == 20


def test_files_text_and_json(tmp_path: Path) -> None:
    txt = tmp_path / "classes.txt"
    txt.write_text("# my classes\ncat\n\ngrass, lawn\n")
    assert resolve_vocabulary(str(txt)) == ["cat", "grass, lawn"]
    js = tmp_path / "classes.json"
    js.write_text(json.dumps(["cat", ["grass", "lawn"]]))
    assert resolve_vocabulary(str(js)) == ["cat", "grass, lawn"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "the vocabulary is empty"),
        (" , ,", "the vocabulary is empty"),
        ("cat, Cat ,dog", r"duplicate class names.*'cat' = #1 'Cat'"),
        ("sky, big  tree, Big tree", "duplicate class names"),
        ("missing_file.txt", "class file not found"),
    ],
)
def test_bad_vocabularies_name_the_option(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^--vocabulary.*{message}"):
        resolve_vocabulary(spec)


def test_bad_class_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_vocabulary(str(bad))
    nums = tmp_path / "nums.json"
    nums.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a class name"):
        resolve_vocabulary(str(nums))
    dup = tmp_path / "dup.txt"
    dup.write_text("cat\nCAT\n")
    with pytest.raises(ValueError, match=r"dup.txt.*duplicate class names"):
        resolve_vocabulary(str(dup))


def test_folders_are_searched_recursively_and_names_stay_distinct(tmp_path: Path) -> None:
    for rel in ("a/x.png", "b/x.png", "b/deep/y.jpg", "notes.txt", "z.JPG"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    files = collect_images([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a/x.png", "b/deep/y.jpg", "b/x.png", "z.JPG"]
    assert output_stems(files, [tmp_path]) == ["a__x", "b__deep__y", "b__x", "z"]
    assert [p.name for p in collect_images([tmp_path], recursive=False)] == ["z.JPG"]
    with pytest.raises(ValueError, match="image not found"):
        collect_images([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        collect_images([tmp_path / "empty"])


def test_batches_and_tables() -> None:
    assert list(batched([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError, match="--batch-size must be >= 1, got 0"):
        list(batched([1], 0))
    assert cell(float("nan")) == "-" and cell(None) == "-" and cell(12.345) == "12.3" and cell(3) == "3"
    table = format_table([{"name": "a150", "mIoU": 31.84}], [("benchmark", "name", 0), ("mIoU", "mIoU", 1)])
    assert table.splitlines() == ["benchmark  mIoU", "---------  ----", "a150       31.8"]
