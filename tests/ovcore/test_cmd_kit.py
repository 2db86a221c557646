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


def test_option_checks_name_the_option() -> None:
    from ovcore.cmd.errors import UsageError, check_min, check_positive, check_range

    check_min("--workers", 0, 0)
    check_positive("--lr", 1e-4)
    check_range("--alpha", 1.0, 0.0, 1.0)
    check_min("--max-images", None, 1)  # None means "not given"
    with pytest.raises(UsageError, match=r"^--workers must be >= 0, got -1; use 0 for none$"):
        check_min("--workers", -1, 0, hint="use 0 for none")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(UsageError, match=r"^--lr must be > 0"):
            check_positive("--lr", bad)
    with pytest.raises(UsageError, match=r"^--alpha must lie in \[0.0, 1.0\], got 1.5$"):
        check_range("--alpha", 1.5, 0.0, 1.0)
    with pytest.raises(UsageError, match=r"^--p must lie in \(0.0, 1.0\), got 0.0$"):
        check_range("--p", 0.0, 0.0, 1.0, open_low=True, open_high=True)


def test_renamed_flags_are_rewritten_with_one_warning_each(capsys: pytest.CaptureFixture[str]) -> None:
    from ovcore.cmd.options import rename_flags

    argv = ["--data.root", "/d", "--keep", "--data.root=/e", "value", "--data.rootish", "x"]
    got = rename_flags(argv, {"--data.root": "--data-root"}, "prog")
    assert got == ["--data-root", "/d", "--keep", "--data-root=/e", "value", "--data.rootish", "x"]
    err = capsys.readouterr().err.splitlines()
    line = "prog: warning: --data.root is deprecated and will be removed in the next release; use --data-root"
    assert err == [line, line]


def test_legacy_predict_outputs_become_predictions() -> None:
    import torch

    from ovcore.cmd.evaluate import _mean_stats
    from ovcore.cmd.model import as_prediction
    from ovcore.method import Prediction

    probs = torch.tensor([[[[0.1]], [[0.9]]], [[[0.8]], [[0.2]]]])  # (2, 2, 1, 1)
    bare = as_prediction(probs, ["a", "b"])
    assert isinstance(bare, Prediction) and bare.labels.flatten().tolist() == [1, 0] and bare.stats == [{}, {}]
    # stats as one dict of per-image lists (the earlier dict results); entries of another length are dropped
    legacy = as_prediction({"probs": probs, "stats": {"kept": [[4, 2], [3, 1]], "total": [1]}}, ["a", "b"])
    assert legacy.stats == [{"kept": [4, 2]}, {"kept": [3, 1]}] and legacy.class_names == ["a", "b"]
    assert as_prediction(legacy, ["x"]) is legacy
    assert _mean_stats(legacy.stats) == {"kept": [3.5, 1.5]}
    assert _mean_stats([{"ms": 1, "name": "x"}, {"ms": 2.0, "name": "y"}]) == {"ms": 1.5} and _mean_stats([]) == {}
