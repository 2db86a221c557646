"""Label remapping of the inductive protocol (ZegCLIP's, CLIP-ZSS paper Sec. 3.1) for VOC 15/5, COCO-Stuff 156/15
and Context 49/10."""

from __future__ import annotations

import pytest
import torch

from clipzss.config import CLIPZSSConfig
from clipzss.model import check_label_ids, compact_with_lut, resolve_vocabulary, seen_label_lut

NONE = -1  # ignore value of the compact labels (clipzss.losses.IGNORE_LABEL)

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
            assert got == NONE  # unseen pixels are ordinary ignored pixels
        else:
            assert split.seen[got] == cid  # seen class -> its compact position
    assert int(compact[0, 0, -1]) == NONE
    assert sorted(compact[compact != NONE].tolist()) == list(range(num_seen))
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
    assert out.tolist() == [[[NONE, NONE, 0]]]


def test_the_ignore_value_never_shares_an_id_with_a_class() -> None:
    # compact ids 0..Ns-1 cannot be the compact ignore value
    with pytest.raises(ValueError, match="compact seen id 1"):
        seen_label_lut([4, 5, 6], ignore_index=1)
    # a table wider than 256 for vocabularies past 255 classes: dataset id 300 is a class, not out of range
    lut = seen_label_lut([300, 2], size=301)
    assert compact_with_lut(torch.tensor([300, 2, 255]), lut).tolist() == [0, 1, NONE]
    # the training labels' ignore value (loss.ignore_index) may not be a seen dataset id, nor a compact id
    check_label_ids([0, 1, 2], 255, "dataset")
    with pytest.raises(ValueError, match="seen class 1"):
        check_label_ids([0, 255, 2], 255, "dataset")
    check_label_ids(list(range(255)), 255, "compact")
    with pytest.raises(ValueError, match="compact seen id 255"):
        check_label_ids(list(range(300)), 255, "compact")
    check_label_ids(list(range(300)), 65535, "compact")  # e.g. a uint16 label format with ignore 65535
