"""Label remapping of the inductive protocol (spec §2.3) for VOC 15/5, COCO-Stuff 156/15 and Context 49/10."""

from __future__ import annotations

import pytest
import torch

from clipzss.config import CLIPZSSConfig
from clipzss.model import compact_with_lut, resolve_vocabulary, seen_label_lut

SPLITS = {
    "voc_zs": (20, 15, [15, 16, 17, 18, 19]),
    "coco_stuff_zs": (171, 156, [19, 23, 28, 29, 36, 51, 76, 88, 94, 112, 133, 136, 137, 157, 160]),
    "context_zs": (59, 49, [0, 6, 7, 14, 19, 24, 31, 33, 48, 54]),
}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_unseen_to_ignore_then_compact_seen_ids(name: str) -> None:
    from ovcore.data import get_zeroshot_split, remap_unseen_to_ignore

    num_classes, num_seen, unseen = SPLITS[name]
    split = get_zeroshot_split(name)
    assert len(split.class_names) == num_classes and len(split.seen) == num_seen
    assert sorted(split.unseen) == unseen
    names, seen = resolve_vocabulary(CLIPZSSConfig(dataset=name))
    assert names == split.class_names and seen == split.seen

    # every class id once, plus ignore
    label = torch.cat([torch.arange(num_classes), torch.tensor([255])]).reshape(1, 1, -1)
    train_label = remap_unseen_to_ignore(label, split.unseen)
    compact = compact_with_lut(train_label, seen_label_lut(seen))
    for cid in range(num_classes):
        got = int(compact[0, 0, cid])
        if cid in unseen:
            assert got == 255  # unseen pixels are ordinary ignored pixels
        else:
            assert split.seen[got] == cid  # seen class -> its compact position
    assert int(compact[0, 0, -1]) == 255
    assert sorted(compact[compact != 255].tolist()) == list(range(num_seen))
    # the model never needs the remap to be done upstream: unseen ids also fall to ignore in the table
    assert torch.equal(compact_with_lut(label, seen_label_lut(seen)), compact)


def test_context_unseen_names_follow_the_name_based_split() -> None:
    from ovcore.data import get_zeroshot_split

    split = get_zeroshot_split("context_zs")
    assert set(split.unseen_names) == {
        "cow", "motorbike", "sofa", "cat", "boat", "fence", "bird", "tvmonitor", "keyboard", "aeroplane",
    }  # fmt: skip


def test_bad_vocabularies() -> None:
    with pytest.raises(ValueError):
        resolve_vocabulary(CLIPZSSConfig())
    with pytest.raises(ValueError):
        resolve_vocabulary(CLIPZSSConfig(class_names=["a", "b"], seen_classes=[2]))
    with pytest.raises(ValueError):
        seen_label_lut([300])
    out = compact_with_lut(torch.tensor([[[-1, 999, 1]]]), seen_label_lut([1]))
    assert out.tolist() == [[[255, 255, 0]]]
