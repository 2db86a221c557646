"""Tests for ovcore.metrics: hand-computed cases, reference re-implementations, properties, and DDP all-reduce."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st

from ovcore.metrics import SegEvaluator, format_results, harmonic_iou, metrics_from_confusion, voc20b_collapse

IGNORE = 255


def _nan_equal(a: list[float], b: list[float], tol: float = 1e-9) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or (not math.isnan(x) and not math.isnan(y) and abs(x - y) <= tol)
        for x, y in zip(a, b, strict=True)
    )


def _assert_results_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], list):
            assert _nan_equal(a[key], b[key]), key
        else:
            assert _nan_equal([a[key]], [b[key]]), key


# ----------------------------------------------------------------------------------------------------------------------
# Independent references (written from the mmseg / detectron2 formulas, not from ovcore.metrics)


def _mmseg_reference(pred: torch.Tensor, target: torch.Tensor, k: int) -> dict[str, float | list[float]]:
    """mmseg intersect_and_union + total_area_to_metrics: histograms of kept pixels, IoU = I / U with 0/0 = nan."""
    keep = target != IGNORE
    p, t = pred[keep].double(), target[keep].double()
    inter = torch.histc(p[p == t], bins=k, min=0, max=k - 1)
    area_p = torch.histc(p, bins=k, min=0, max=k - 1)
    area_t = torch.histc(t, bins=k, min=0, max=k - 1)
    iou = inter / (area_p + area_t - inter)
    acc = inter / area_t
    return {
        "IoU": (100 * iou).tolist(),
        "Acc": (100 * acc).tolist(),
        "mIoU": 100 * float(np.nanmean(iou.numpy())) if (~iou.isnan()).any() else math.nan,
        "mAcc": 100 * float(np.nanmean(acc.numpy())) if (~acc.isnan()).any() else math.nan,
        "pAcc": 100 * float(inter.sum() / area_t.sum()),
    }


def _detectron2_reference(pred: np.ndarray, gt: np.ndarray, k: int) -> dict[str, float | list[float]]:
    """detectron2 SemSegEvaluator: (K+1)^2 matrix [pred, gt] with ignore folded into index K."""
    gt = gt.astype(np.int64).copy()
    gt[gt == IGNORE] = k
    conf = np.bincount((k + 1) * pred.reshape(-1).astype(np.int64) + gt.reshape(-1), minlength=(k + 1) ** 2)
    conf = conf.reshape(k + 1, k + 1)
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = conf[:-1, :-1].sum(0).astype(float)
    pos_pred = conf[:-1, :-1].sum(1).astype(float)
    acc = np.full(k, np.nan)
    iou = np.full(k, np.nan)
    acc_valid = pos_gt > 0
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
    union = pos_gt + pos_pred - tp
    iou_valid = acc_valid & (union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    weights = pos_gt / pos_gt.sum()
    return {
        "IoU": (100 * iou).tolist(),
        "Acc": (100 * acc).tolist(),
        "mIoU": 100 * iou[iou_valid].sum() / iou_valid.sum(),
        "mAcc": 100 * acc[acc_valid].sum() / acc_valid.sum(),
        "pAcc": 100 * tp.sum() / pos_gt.sum(),
        "fwIoU": 100 * (iou[iou_valid] * weights[iou_valid]).sum(),
    }


# ----------------------------------------------------------------------------------------------------------------------
# Strategies


@st.composite
def label_pairs(draw, max_classes: int = 6):
    """(pred, target, K): random (N, H, W) maps with some ignore pixels, at least one scored pixel."""
    k = draw(st.integers(2, max_classes))
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k, (n, h, w), generator=g)
    target[torch.rand(n, h, w, generator=g) < 0.2] = IGNORE
    target.view(-1)[0] = torch.randint(0, k, (1,), generator=g)
    # Mostly-right predictions, so IoUs are spread over (0, 100].
    noise = torch.randint(0, k, (n, h, w), generator=g)
    pred = torch.where(torch.rand(n, h, w, generator=g) < 0.6, target.clamp_max(k - 1), noise)
    return pred, target, k


# ----------------------------------------------------------------------------------------------------------------------
# Hand-computed cases


def test_hand_computed_three_classes():
    target = torch.tensor([[[0, 0, 1], [1, 2, IGNORE]]])
    pred = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    ev = SegEvaluator(3)
    ev.update(pred, target)
    # Kept pixels (t, p): (0,0) (0,1) (1,1) (1,2) (2,2); the ignored pixel predicted 0 is dropped.
    assert ev.confusion.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    r = ev.compute()
    assert r["IoU"] == pytest.approx([50.0, 100 / 3, 50.0])
    assert r["Acc"] == pytest.approx([50.0, 50.0, 100.0])
    assert r["mIoU"] == pytest.approx((50 + 100 / 3 + 50) / 3)
    assert r["mAcc"] == pytest.approx(200 / 3)
    assert r["pAcc"] == pytest.approx(60.0)
    assert r["fwIoU"] == pytest.approx(100 * (0.4 * 0.5 + 0.4 / 3 + 0.2 * 0.5))
    assert "hIoU" not in r and "mIoU_seen" not in r


def test_conventions_differ_only_for_predicted_but_absent_class():
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 2, 1, 1]])  # class 2 is predicted once but never in the ground truth
    results = {}
    for conv in ("mmseg", "detectron2"):
        ev = SegEvaluator(4, iou_convention=conv)
        ev.update(pred, target)
        results[conv] = ev.compute()
    mm, d2 = results["mmseg"], results["detectron2"]
    assert mm["IoU"][:3] == pytest.approx([50.0, 100.0, 0.0]) and math.isnan(mm["IoU"][3])
    assert d2["IoU"][:2] == pytest.approx([50.0, 100.0]) and math.isnan(d2["IoU"][2]) and math.isnan(d2["IoU"][3])
    assert mm["mIoU"] == pytest.approx(50.0)
    assert d2["mIoU"] == pytest.approx(75.0)
    for key in ("mAcc", "pAcc", "fwIoU"):
        assert mm[key] == pytest.approx(d2[key])
    assert mm["fwIoU"] == pytest.approx(75.0)
    assert _nan_equal(mm["Acc"], d2["Acc"])


def test_classes_absent_in_both_are_nan_and_excluded():
    ev = SegEvaluator(5)
    ev.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
    r = ev.compute()
    assert all(math.isnan(r["IoU"][c]) and math.isnan(r["Acc"][c]) for c in (2, 3, 4))
    assert r["mIoU"] == pytest.approx((50.0 + 50.0) / 2)


def test_empty_evaluator_is_all_nan():
    r = SegEvaluator(3).compute()
    assert all(math.isnan(r[k]) for k in ("mIoU", "mAcc", "pAcc", "fwIoU"))


def test_seen_unseen_hiou():
    # IoU = [100, 50, 0 (predicted, absent), 50]; seen = {0, 1}, unseen = {2, 3}.
    target = torch.tensor([[0, 1, 1, 3, 3]])
    pred = torch.tensor([[0, 1, 3, 3, 2]])
    ev = SegEvaluator(4, seen_classes=[0, 1], unseen_classes=[2, 3])
    ev.update(pred, target)
    r = ev.compute()
    assert r["IoU"] == pytest.approx([100.0, 50.0, 0.0, 100 / 3])
    assert r["mIoU_seen"] == pytest.approx(75.0)
    assert r["mIoU_unseen"] == pytest.approx(50 / 3)
    s, u = 75.0, 50 / 3
    assert r["hIoU"] == pytest.approx(2 * s * u / (s + u))
    # Only the unseen ids given: seen is the complement.
    ev2 = SegEvaluator(4, unseen_classes=[2, 3])
    assert ev2.seen_classes == [0, 1]


def test_harmonic_iou_edge_cases():
    assert harmonic_iou(0.0, 0.0) == 0.0
    assert harmonic_iou(50.0, 0.0) == 0.0
    assert harmonic_iou(40.0, 60.0) == pytest.approx(48.0)
    assert math.isnan(harmonic_iou(math.nan, 10.0))


def test_split_argument_errors():
    with pytest.raises(ValueError, match="overlap"):
        SegEvaluator(4, seen_classes=[0, 1], unseen_classes=[1, 2])
    with pytest.raises(ValueError, match="outside"):
        SegEvaluator(4, seen_classes=[0, 4])
    with pytest.raises(ValueError, match="class_names"):
        SegEvaluator(3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="iou_convention"):
        SegEvaluator(3, iou_convention="voc")


# ----------------------------------------------------------------------------------------------------------------------
# Input validation


def test_out_of_range_ground_truth_names_the_values():
    ev = SegEvaluator(20)
    target = torch.tensor([[0, 20, 255, 21, 20]])  # VOC with background 20 fed to a 20-class evaluator
    with pytest.raises(ValueError, match=r"\[20, 21\]"):
        ev.update(torch.zeros_like(target), target)
    with pytest.raises(ValueError, match=r"\[-1\]"):
        ev.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[-1, 0]]))
    assert ev.confusion.sum() == 0  # a failed update leaves the state untouched


def test_out_of_range_prediction_raises_even_on_ignored_pixels():
    ev = SegEvaluator(3)
    with pytest.raises(ValueError, match=r"\[3\]"):
        ev.update(torch.tensor([[0, 3]]), torch.tensor([[0, IGNORE]]))
    with pytest.raises(ValueError, match="outside"):
        ev.update(torch.tensor([[-1, 0]]), torch.tensor([[0, 0]]))


def test_bad_shapes_and_dtypes_raise():
    ev = SegEvaluator(3)
    with pytest.raises(ValueError, match="shape"):
        ev.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        ev.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_narrow_integer_dtypes_do_not_overflow():
    k = 300
    target = torch.tensor([[299, 298, 0]], dtype=torch.int16)
    pred = torch.tensor([[299, 0, 0]], dtype=torch.int16)
    ev = SegEvaluator(k, ignore_index=None)
    ev.update(pred, target)
    assert ev.confusion[299, 299] == 1 and ev.confusion[298, 0] == 1 and ev.confusion[0, 0] == 1


def test_ignore_index_none_scores_every_pixel():
    ev = SegEvaluator(256, ignore_index=None)
    ev.update(torch.tensor([[255, 0]]), torch.tensor([[255, 0]]))
    assert ev.compute()["pAcc"] == 100.0


def test_ignore_index_inside_class_range_is_never_scored():
    ev = SegEvaluator(3, ignore_index=0)  # e.g. a dataset whose class 0 is "unlabeled"
    ev.update(torch.tensor([[1, 2, 2, 0]]), torch.tensor([[0, 0, 2, 1]]))
    assert ev.confusion.tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[3\]"):
        SegEvaluator(3, ignore_index=None).update(torch.tensor([[0]]), torch.tensor([[3]]))


def test_voc20b_collapse_and_pred_remap():
    scores_argmax = torch.tensor([[0, 19, 20, 35, 58]])
    assert voc20b_collapse(scores_argmax).tolist() == [[0, 19, 20, 20, 20]]
    target = torch.tensor([[0, 19, 20, 20, 20]])
    with pytest.raises(ValueError, match="pred_remap"):
        SegEvaluator(21).update(scores_argmax, target)
    ev = SegEvaluator(21, pred_remap=voc20b_collapse)
    ev.update(scores_argmax, target)
    assert ev.compute()["mIoU"] == pytest.approx(100.0)


# ----------------------------------------------------------------------------------------------------------------------
# Properties


@given(label_pairs())
def test_matches_mmseg_reference(case):
    pred, target, k = case
    ev = SegEvaluator(k, iou_convention="mmseg")
    ev.update(pred, target)
    r = ev.compute()
    ref = _mmseg_reference(pred, target, k)
    for key in ("IoU", "Acc"):
        assert _nan_equal(r[key], ref[key], 1e-6), key
    for key in ("mIoU", "mAcc", "pAcc"):
        assert _nan_equal([r[key]], [ref[key]], 1e-6), key


@given(label_pairs())
def test_matches_detectron2_reference(case):
    pred, target, k = case
    ev = SegEvaluator(k, iou_convention="detectron2")
    ev.update(pred, target)
    r = ev.compute()
    ref = _detectron2_reference(pred.numpy(), target.numpy(), k)
    for key in ("IoU", "Acc"):
        assert _nan_equal(r[key], ref[key], 1e-6), key
    for key in ("mIoU", "mAcc", "pAcc", "fwIoU"):
        assert _nan_equal([r[key]], [float(ref[key])], 1e-6), key


@given(label_pairs())
def test_perfect_prediction_is_100(case):
    _, target, k = case
    ev = SegEvaluator(k)
    ev.update(target.clamp_max(k - 1), target)  # ignored pixels get an arbitrary in-range class
    r = ev.compute()
    for key in ("mIoU", "mAcc", "pAcc", "fwIoU"):
        assert r[key] == pytest.approx(100.0)
    present = set(target[target != IGNORE].tolist())
    for c in range(k):
        assert (r["IoU"][c] == pytest.approx(100.0)) if c in present else math.isnan(r["IoU"][c])


@given(label_pairs(), st.randoms(use_true_random=False))
def test_permuting_class_ids_permutes_iou(case, rnd):
    pred, target, k = case
    perm = list(range(k))
    rnd.shuffle(perm)
    lut = torch.tensor(perm)
    keep = target != IGNORE
    target_p = torch.where(keep, lut[target.clamp_max(k - 1)], target)
    pred_p = lut[pred]
    a, b = SegEvaluator(k), SegEvaluator(k)
    a.update(pred, target)
    b.update(pred_p, target_p)
    ra, rb = a.compute(), b.compute()
    assert _nan_equal([ra["IoU"][c] for c in range(k)], [rb["IoU"][perm[c]] for c in range(k)])
    for key in ("mIoU", "mAcc", "pAcc", "fwIoU"):
        assert ra[key] == pytest.approx(rb[key])


@given(label_pairs(), st.integers(0, 2**31 - 1))
def test_ignored_pixels_never_count(case, seed):
    pred, target, k = case
    g = torch.Generator().manual_seed(seed)
    other = torch.where(target == IGNORE, torch.randint(0, k, pred.shape, generator=g), pred)
    a, b = SegEvaluator(k), SegEvaluator(k)
    a.update(pred, target)
    b.update(other, target)
    assert torch.equal(a.confusion, b.confusion)
    assert int(a.confusion.sum()) == int((target != IGNORE).sum())


@given(label_pairs(), st.integers(1, 3))
def test_streaming_equals_one_shot(case, chunks):
    pred, target, k = case
    one = SegEvaluator(k, seen_classes=[0])
    one.update(pred, target)
    many = SegEvaluator(k, seen_classes=[0])
    for p, t in zip(pred.flatten(1).chunk(chunks, dim=1), target.flatten(1).chunk(chunks, dim=1), strict=True):
        for i in range(p.shape[0]):  # per image too: (H, W) inputs are accepted
            many.update(p[i], t[i])
    assert torch.equal(one.confusion, many.confusion)
    _assert_results_equal(one.compute(), many.compute())


# ----------------------------------------------------------------------------------------------------------------------
# State, merge, formatting


def test_state_dict_round_trip_and_merge():
    a = SegEvaluator(3)
    a.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
    state = a.state_dict()
    b = SegEvaluator(3)
    b.load_state_dict(state)
    assert torch.equal(a.confusion, b.confusion)
    _assert_results_equal(a.compute(), b.compute())
    b.load_state_dict(state, merge=True)
    assert torch.equal(b.confusion, 2 * a.confusion)
    c = SegEvaluator(3).merge(a).merge(a)
    assert torch.equal(c.confusion, b.confusion)
    state["confusion"][0, 0] += 1  # the snapshot is a copy, not a view
    assert a.confusion[0, 0] == 1
    with pytest.raises(ValueError, match="num_classes"):
        SegEvaluator(4).load_state_dict(state)
    with pytest.raises(ValueError, match="ignore_index"):
        SegEvaluator(3, ignore_index=0).load_state_dict(state)
    a.reset()
    assert a.confusion.sum() == 0


def test_state_dict_survives_torch_save(tmp_path: Path):
    a = SegEvaluator(3)
    a.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
    torch.save(a.state_dict(), tmp_path / "ev.pt")
    b = SegEvaluator(3)
    b.load_state_dict(torch.load(tmp_path / "ev.pt", weights_only=True))
    assert torch.equal(a.confusion, b.confusion)


def test_summary_table():
    ev = SegEvaluator(3, class_names=["road", "sky", "tree"], unseen_classes=[2])
    ev.update(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 1, 0]]))
    table = ev.summary_table()
    lines = table.splitlines()
    assert len(lines) == 1 + 3 + 1
    assert "road" in lines[1] and "seen" in lines[1] and "unseen" in lines[3] and "nan" in lines[3]
    assert lines[-1].startswith("mIoU 50.00") and "hIoU" in lines[-1]
    plain = format_results(metrics_from_confusion(ev.confusion), digits=1)
    assert "mIoU 50.0" in plain and "split" not in plain


def test_all_reduce_is_noop_without_process_group():
    ev = SegEvaluator(2)
    ev.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    before = ev.confusion.clone()
    assert ev.all_reduce() is ev
    assert torch.equal(ev.confusion, before)


@pytest.mark.gpu
def test_confusion_stays_on_cuda():
    ev = SegEvaluator(3)
    ev.update(torch.tensor([[0, 1, 2]], device="cuda"), torch.tensor([[0, 1, 255]], device="cuda"))
    assert ev.device.type == "cuda"
    assert ev.compute()["mIoU"] == pytest.approx(100.0)


# ----------------------------------------------------------------------------------------------------------------------
# torch.distributed: 2 CPU processes, gloo


def _rank_data(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    target = torch.randint(0, 4, (2, 5, 7), generator=g)
    target[:, 0, 0] = IGNORE
    pred = torch.randint(0, 4, (2, 5, 7), generator=g)
    return pred, target


def _all_reduce_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ev = SegEvaluator(4)
        ev.update(*_rank_data(rank))
        ev.all_reduce()
        torch.save(ev.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_all_reduce_two_processes(tmp_path: Path):
    world_size = 2
    mp.spawn(_all_reduce_worker, args=(world_size, str(tmp_path / "init"), str(tmp_path)), nprocs=world_size)
    expected = SegEvaluator(4)
    for rank in range(world_size):
        expected.update(*_rank_data(rank))
    for rank in range(world_size):
        state = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(state["confusion"], expected.confusion)
