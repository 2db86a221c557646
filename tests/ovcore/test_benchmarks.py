"""One benchmark registry for every method (ovcore.benchmarks)."""

from __future__ import annotations

import pytest

from ovcore.benchmarks import BENCHMARK_GROUPS, get_benchmark, list_benchmarks, resolve_benchmarks


@pytest.mark.parametrize(
    ("name", "short"),
    [("a150", "a150"), ("A-150", "a150"), ("ade20k_150", "a150"), ("PAS-20b", "pas20b"), ("voc_zs", "voc_zs"),
     ("coco-stuff-zs", "coco_stuff_zs"), ("demo", "demo"), ("demo_zs", "demo_zs"), ("pascal_context_459", "pc459")],
)
def test_names_titles_and_dataset_names_find_the_benchmark(name: str, short: str) -> None:
    assert get_benchmark(name).name == short


def test_groups_expand_in_order_without_duplicates() -> None:
    got = [b.name for b in resolve_benchmarks(["zero-shot", "voc_zs", "cross-dataset", "a150"])]
    assert got == ["voc_zs", "coco_stuff_zs", "context_zs", "pas20", "pc59", "a150"]
    assert set(BENCHMARK_GROUPS["open-vocabulary"]) <= set(list_benchmarks())


def test_unknown_and_empty_name_the_option() -> None:
    with pytest.raises(ValueError, match=r"--benchmarks: unknown benchmark 'a1500'; choose from a847"):
        resolve_benchmarks(["a1500"])
    with pytest.raises(ValueError, match="--bench: no benchmark given"):
        resolve_benchmarks([], option="--bench")


def test_protocols_follow_the_dataset_catalog() -> None:
    pas20b = get_benchmark("pas20b").protocol()
    assert len(pas20b.vocabulary) == 59 and pas20b.num_classes == 21 and pas20b.score_names[-1] == "background"
    import torch

    assert pas20b.pred_remap is not None
    assert pas20b.pred_remap(torch.tensor([3, 20, 45])).tolist() == [3, 20, 20]
    voc = get_benchmark("voc_zs").protocol()
    assert voc.num_classes == 20 and len(voc.seen) == 15 and voc.ignore_index == 255
    demo = get_benchmark("demo_zs").protocol()
    assert demo.seen == [0, 1, 2, 3, 4, 5] and demo.num_classes == 8
    assert get_benchmark("a847").protocol().ignore_index == 65535
    assert get_benchmark("demo").protocol().seen is None
