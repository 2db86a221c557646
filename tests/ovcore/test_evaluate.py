"""Tests for ovcore.evaluate: oracle runs, batching by size, resizing, JSON output, timing keys, and DDP sharding."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import Dataset

from ovcore.evaluate import evaluate, json_safe, same_size_batches, shard_indices
from ovcore.metrics import SegEvaluator, voc20b_collapse

IGNORE = 255
K = 4
JSON_KEYS = {
    "mIoU", "mAcc", "pAcc", "fwIoU", "IoU", "Acc", "class_names", "per_class_IoU", "per_class_Acc", "num_classes",
    "num_images", "ms_per_image", "images_per_s", "wall_s", "batch_size", "world_size", "device", "device_name",
    "iou_convention", "timestamp", "seen_classes", "unseen_classes",
}  # fmt: skip


class ToyDataset(Dataset):
    """In-memory samples whose image channel 0 *is* the label (0..K-1, or IGNORE), so an oracle can read it back.

    Labels are made of 2x2 blocks, so a half-resolution score map upsampled bilinearly recovers them exactly.
    """

    def __init__(self, sizes: list[tuple[int, int]], num_classes: int = K, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.samples = []
        for i, (h, w) in enumerate(sizes):
            blocks = torch.randint(0, num_classes, (h // 2, w // 2), generator=g)
            label = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)
            label[0, :2] = IGNORE
            image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
            image[0] = label.to(torch.uint8)
            self.samples.append({"image": image, "label": label.long(), "name": f"img{i}"})

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def oracle(images: torch.Tensor, num_classes: int = K) -> torch.Tensor:
    """One-hot scores of the label hidden in channel 0 (ignored pixels get class 0)."""
    label = images[:, 0].long()
    label = torch.where(label == IGNORE, 0, label)
    return F.one_hot(label, num_classes).permute(0, 3, 1, 2).float()


def noisy(images: torch.Tensor) -> torch.Tensor:
    """A deterministic imperfect predictor: the oracle with every third column shifted by one class."""
    label = torch.where(images[:, 0].long() == IGNORE, 0, images[:, 0].long())
    label[..., ::3] = (label[..., ::3] + 1) % K
    return F.one_hot(label, K).permute(0, 3, 1, 2).float()


def _reference(dataset: ToyDataset, predict_fn, **kwargs) -> dict:
    ev = SegEvaluator(K, **kwargs)
    for s in dataset.samples:
        ev.update(predict_fn(s["image"][None]).argmax(1), s["label"][None])
    return ev.compute()


def test_oracle_gives_100_and_writes_json(tmp_path: Path):
    ds = ToyDataset([(8, 10)] * 5)
    out = tmp_path / "sub" / "results.json"
    names = ["road", "sky", "tree", "car"]
    r = evaluate(oracle, ds, num_classes=K, class_names=names, output_json=out, progress=False)
    for key in ("mIoU", "mAcc", "pAcc", "fwIoU"):
        assert r[key] == pytest.approx(100.0)
    assert r["num_images"] == 5 and r["world_size"] == 1
    assert r["device"] == "cpu" and isinstance(r["device_name"], str) and r["device_name"]
    assert r["ms_per_image"] > 0 and r["images_per_s"] == pytest.approx(1000.0 / r["ms_per_image"])
    assert "hIoU" not in r

    data = json.loads(out.read_text())
    assert set(data) == JSON_KEYS
    assert data["per_class_IoU"] == {n: pytest.approx(100.0) for n in names}
    assert data["class_names"] == names and data["num_images"] == 5 and data["timestamp"].endswith("+00:00")


def test_split_keys_and_nan_written_as_null(tmp_path: Path):
    ds = ToyDataset([(6, 6)] * 3, num_classes=2)  # classes 2 and 3 never occur: IoU nan -> null in JSON
    r = evaluate(
        oracle,
        ds,
        num_classes=K,
        seen_classes=[0, 1],
        unseen_classes=[2, 3],
        output_json=tmp_path / "r.json",
        progress=False,
    )
    assert r["mIoU_seen"] == pytest.approx(100.0) and math.isnan(r["mIoU_unseen"]) and math.isnan(r["hIoU"])
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == JSON_KEYS | {"mIoU_seen", "mIoU_unseen", "hIoU"}
    assert data["IoU"][2] is None and data["hIoU"] is None and data["per_class_IoU"]["3"] is None
    assert data["seen_classes"] == [0, 1] and data["unseen_classes"] == [2, 3]


def test_matches_direct_evaluator_with_split():
    ds = ToyDataset([(8, 8)] * 4)
    r = evaluate(noisy, ds, num_classes=K, seen_classes=[0, 1], unseen_classes=[2, 3], progress=False)
    ref = _reference(ds, noisy, seen_classes=[0, 1], unseen_classes=[2, 3])
    for key in ("mIoU", "mAcc", "pAcc", "fwIoU", "mIoU_seen", "mIoU_unseen", "hIoU"):
        assert r[key] == pytest.approx(ref[key])
    assert 0 < r["hIoU"] < 100


def test_mixed_sizes_batch_only_same_size_runs():
    sizes = [(6, 8), (6, 8), (6, 8), (4, 4), (6, 8), (6, 8)]
    ds = ToyDataset(sizes)
    seen_batches = []

    def fn(images):
        seen_batches.append(tuple(images.shape))
        return oracle(images)

    r = evaluate(fn, ds, num_classes=K, batch_size=2, progress=False, num_workers=1)
    assert seen_batches == [(2, 3, 6, 8), (1, 3, 6, 8), (1, 3, 4, 4), (2, 3, 6, 8)]
    assert r["mIoU"] == pytest.approx(100.0) and r["num_images"] == 6


def test_scores_are_resized_to_label_size():
    ds = ToyDataset([(8, 12), (8, 12)])

    def half_res(images):  # 2x2 blocks: bilinear upsampling + argmax recovers the label exactly
        return F.avg_pool2d(oracle(images), 2)

    calls = []

    def check(images):
        calls.append(1)
        return half_res(images)

    assert evaluate(check, ds, num_classes=K, progress=False)["mIoU"] == pytest.approx(100.0)
    assert len(calls) == 2


def test_pred_remap_voc20b():
    ds = ToyDataset([(6, 6)] * 2, num_classes=21)
    for s in ds.samples:  # make sure background (20) occurs
        s["label"][2:4, 2:4] = 20
        s["image"][0, 2:4, 2:4] = 20

    def fifty_nine(images):  # 59 channels; every foreground label 20 is predicted as one of the 39 "proxies"
        label = torch.where(images[:, 0].long() == IGNORE, 0, images[:, 0].long())
        label = torch.where(label == 20, 20 + label.new_tensor(17), label)
        return F.one_hot(label, 59).permute(0, 3, 1, 2).float()

    with pytest.raises(ValueError, match="pred_remap"):
        evaluate(fifty_nine, ds, num_classes=21, progress=False)
    r = evaluate(fifty_nine, ds, num_classes=21, pred_remap=voc20b_collapse, progress=False)
    assert r["mIoU"] == pytest.approx(100.0)


def test_warmup_and_timing_keys():
    ds = ToyDataset([(4, 4)] * 3)
    r = evaluate(oracle, ds, num_classes=K, warmup=3, progress=False)
    assert r["ms_per_image"] is None and r["images_per_s"] is None and r["wall_s"] > 0
    r = evaluate(oracle, ds, num_classes=K, warmup=0, batch_size=3, progress=True)
    assert r["ms_per_image"] > 0


def test_bad_inputs():
    ds = ToyDataset([(4, 4)])
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        evaluate(lambda x: oracle(x)[:, 0], ds, num_classes=K, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(oracle, ds, num_classes=K, batch_size=0, progress=False)
    with pytest.raises(RuntimeError, match="distributed"):
        evaluate(oracle, ds, num_classes=K, distributed=True, progress=False)
    with pytest.raises(ValueError, match=r"outside .*img0"):  # labels use 0..3: 3 classes is a convention error
        evaluate(lambda x: oracle(x)[:, :3], ToyDataset([(8, 8)] * 2), num_classes=3, progress=False)


def test_json_safe_nulls_non_finite_floats_at_any_depth():
    from types import MappingProxyType

    value = {"a": math.nan, "b": [1.0, math.inf, (2, -math.inf)], "c": MappingProxyType({"d": 0.5, 3: math.nan})}
    assert json_safe(value) == {"a": None, "b": [1.0, None, [2, None]], "c": {"d": 0.5, 3: None}}
    assert json.loads(json.dumps(json_safe(value), allow_nan=False))["b"] == [1.0, None, [2, None]]
    assert value["a"] is math.nan  # the input is not modified


@given(st.integers(0, 40), st.integers(1, 5))
def test_shards_cover_every_index_once(n, world):
    shards = [shard_indices(n, r, world) for r in range(world)]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@given(st.lists(st.sampled_from([(2, 2), (3, 2)]), max_size=12), st.integers(1, 4))
def test_same_size_batches_keep_order_and_sizes(sizes, batch_size):
    samples = [{"image": torch.zeros(3, *hw), "label": torch.zeros(hw), "i": i} for i, hw in enumerate(sizes)]
    batches = list(same_size_batches(samples, batch_size))
    assert [s["i"] for b in batches for s in b] == list(range(len(sizes)))
    for b in batches:
        assert 1 <= len(b) <= batch_size and len({tuple(s["image"].shape) for s in b}) == 1


@pytest.mark.gpu
def test_evaluate_on_cuda():
    r = evaluate(oracle, ToyDataset([(8, 8)] * 3), num_classes=K, device="cuda", progress=False)
    assert r["mIoU"] == pytest.approx(100.0) and r["device"].startswith("cuda")


# ----------------------------------------------------------------------------------------------------------------------
# torch.distributed: 2 CPU processes, gloo, 5 images (uneven shards)


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ds = ToyDataset([(8, 8)] * 5)
        r = evaluate(
            noisy, ds, num_classes=K, distributed=True, progress=False, warmup=0,
            output_json=os.path.join(out_dir, f"written_by_rank{rank}.json"),
        )  # fmt: skip
        torch.save({"mIoU": r["mIoU"], "IoU": r["IoU"], "num_images": r["num_images"]}, f"{out_dir}/r{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_distributed_evaluate_two_processes(tmp_path: Path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ref = _reference(ToyDataset([(8, 8)] * 5), noisy)
    for rank in range(2):
        r = torch.load(tmp_path / f"r{rank}.pt", weights_only=True)
        assert r["num_images"] == 5
        assert r["mIoU"] == pytest.approx(ref["mIoU"]) and r["IoU"] == pytest.approx(ref["IoU"], nan_ok=True)
    assert (tmp_path / "written_by_rank0.json").exists() and not (tmp_path / "written_by_rank1.json").exists()
    data = json.loads((tmp_path / "written_by_rank0.json").read_text())
    assert data["world_size"] == 2 and data["num_images"] == 5
