"""Streaming semantic-segmentation metrics from a confusion matrix.

One evaluator serves both methods of the repo:

* SED is scored like detectron2's ``SemSegEvaluator`` (and ``VOCbEvaluator`` for PAS-20b, where every predicted
  index >= 20 becomes 20, see :func:`voc20b_collapse`);
* CLIP-ZSS is scored like mmseg's ``intersect_and_union`` / ``total_area_to_metrics`` plus ZegCLIP's seen/unseen
  means and the harmonic mean hIoU.

Both accumulate areas over the whole split (not a mean of per-image IoUs) and drop every pixel whose ground truth is
the ignore index, whatever is predicted there. They differ in exactly one place, the IoU of a class that is
**predicted somewhere but absent from the ground truth of the whole split**:

=====================  ===========================================  ==========================================
quantity               mmseg (``iou_convention="mmseg"``, default)   detectron2 (``iou_convention="detectron2"``)
=====================  ===========================================  ==========================================
IoU, GT>0              TP / (GT + Pred - TP)                        same
IoU, GT=0, Pred>0      0 (counts in mIoU, lowers it)                nan (excluded from mIoU)
IoU, GT=0, Pred=0      nan (0/0, excluded)                          nan (excluded)
Acc[c]                 TP / GT, nan where GT=0                      same
mIoU / mAcc            nan-mean of IoU / Acc                        same
pAcc (mmseg "aAcc")    sum TP / sum GT                              same
fwIoU                  (not reported by mmseg)                      sum_c GT_c/sum GT * IoU_c over GT_c>0
=====================  ===========================================  ==========================================

fwIoU only weights classes with GT>0, so it is the same under both conventions. The difference matters on
large vocabularies evaluated on a val split where many classes never occur (A-847, PC-459): a spurious prediction
of such a class costs a 0 in mmseg's mean and nothing in detectron2's. Use ``"detectron2"`` to reproduce SED
tables and ``"mmseg"`` for CLIP-ZSS / ZegCLIP tables.

All reported numbers are in percent, like the tables both libraries print.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.distributed as dist

__all__ = [
    "IoUConvention",
    "SegEvaluator",
    "format_results",
    "harmonic_iou",
    "metrics_from_confusion",
    "voc20b_collapse",
]

IoUConvention = Literal["mmseg", "detectron2"]
_CONVENTIONS = ("mmseg", "detectron2")


def voc20b_collapse(pred: torch.Tensor, num_fg: int = 20) -> torch.Tensor:
    """Map every predicted class id ``>= num_fg`` to ``num_fg`` (SED's ``VOCbEvaluator`` rule for PAS-20b).

    PAS-20b is predicted over 59 names (the 20 VOC classes followed by 39 PC-59 "background proxies") and scored
    over 21 classes (20 + background). Use it as ``SegEvaluator(21, pred_remap=voc20b_collapse)``.

    Args:
        pred: Integer class map of any shape.
        num_fg: Number of foreground classes; ``num_fg`` itself is the background id.

    Returns:
        A tensor like ``pred`` with values in ``[min(pred), num_fg]``.
    """
    return pred.clamp_max(num_fg)


def harmonic_iou(seen: float, unseen: float) -> float:
    """Harmonic mean ``2*S*U/(S+U)`` of the seen and unseen mIoU (0 when both are 0, nan if either is nan)."""
    if math.isnan(seen) or math.isnan(unseen):
        return math.nan
    if seen + unseen == 0:
        return 0.0
    return 2.0 * seen * unseen / (seen + unseen)


def _nanmean(values: torch.Tensor) -> float:
    # torch.nanmean of an all-nan tensor is nan too, but keep the empty case explicit and warning-free.
    finite = values[~torch.isnan(values)]
    return float(finite.mean()) if finite.numel() else math.nan


def _check_class_ids(ids: Sequence[int] | None, num_classes: int, what: str) -> list[int] | None:
    if ids is None:
        return None
    out = [int(i) for i in ids]
    bad = sorted({i for i in out if not 0 <= i < num_classes})
    if bad:
        raise ValueError(f"{what} has ids outside [0, {num_classes}): {bad[:10]}")
    if len(set(out)) != len(out):
        raise ValueError(f"{what} has duplicate class ids")
    return out


def metrics_from_confusion(
    confusion: torch.Tensor,
    *,
    iou_convention: IoUConvention = "mmseg",
    seen_classes: Sequence[int] | None = None,
    unseen_classes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Compute the metrics of a ``(K, K)`` confusion matrix indexed ``[target, prediction]``.

    Args:
        confusion: Pixel counts, rows = ground-truth class, columns = predicted class (ignored pixels excluded).
        iou_convention: ``"mmseg"`` or ``"detectron2"``; see the module docstring for the single difference.
        seen_classes: Class ids averaged into ``"mIoU_seen"``.
        unseen_classes: Class ids averaged into ``"mIoU_unseen"``. ``"hIoU"`` is added when both are given.

    Returns:
        ``{"mIoU", "mAcc", "pAcc", "fwIoU", "IoU", "Acc"}`` (+ ``"mIoU_seen"``, ``"mIoU_unseen"``, ``"hIoU"``), all in
        percent; ``"IoU"`` / ``"Acc"`` are per-class lists with ``nan`` where undefined.
    """
    if iou_convention not in _CONVENTIONS:
        raise ValueError(f"iou_convention must be one of {_CONVENTIONS}, got {iou_convention!r}")
    if confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {tuple(confusion.shape)}")
    conf = confusion.detach().to("cpu", torch.float64)
    tp = conf.diagonal()
    pos_gt = conf.sum(dim=1)
    pos_pred = conf.sum(dim=0)
    union = pos_gt + pos_pred - tp
    nan = torch.full_like(tp, math.nan)

    iou_valid = union > 0 if iou_convention == "mmseg" else pos_gt > 0
    iou = torch.where(iou_valid, tp / union.clamp_min(1), nan)
    acc = torch.where(pos_gt > 0, tp / pos_gt.clamp_min(1), nan)
    total = float(pos_gt.sum())
    if total > 0:
        pacc = float(tp.sum()) / total
        gt_present = pos_gt > 0
        fwiou = float((pos_gt[gt_present] / total * iou[gt_present]).sum())
    else:
        pacc = fwiou = math.nan

    out: dict[str, Any] = {
        "mIoU": 100.0 * _nanmean(iou),
        "mAcc": 100.0 * _nanmean(acc),
        "pAcc": 100.0 * pacc,
        "fwIoU": 100.0 * fwiou,
        "IoU": (100.0 * iou).tolist(),
        "Acc": (100.0 * acc).tolist(),
    }
    num_classes = conf.shape[0]
    seen = _check_class_ids(seen_classes, num_classes, "seen_classes")
    unseen = _check_class_ids(unseen_classes, num_classes, "unseen_classes")
    if seen is not None:
        out["mIoU_seen"] = 100.0 * _nanmean(iou[seen]) if seen else math.nan
    if unseen is not None:
        out["mIoU_unseen"] = 100.0 * _nanmean(iou[unseen]) if unseen else math.nan
    if seen is not None and unseen is not None:
        out["hIoU"] = harmonic_iou(out["mIoU_seen"], out["mIoU_unseen"])
    return out


def _all_reduce_(tensor: torch.Tensor, op: Any = None, group: Any = None) -> None:
    """In-place all-reduce (default: sum) that also works for a CPU tensor under NCCL (NCCL reduces CUDA only)."""
    op = dist.ReduceOp.SUM if op is None else op
    work = tensor
    if dist.get_backend(group) == "nccl" and tensor.device.type != "cuda":
        work = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(work, op=op, group=group)
    if work is not tensor:
        tensor.copy_(work)


class SegEvaluator:
    """Accumulates a ``(K, K)`` int64 confusion matrix over batches and reports mIoU-style metrics.

    The matrix lives on ``device`` (or on the device of the first ``update`` when ``device`` is None), so GPU
    predictions are never copied to the host; one ``torch.bincount`` of ``target * K + pred`` over the non-ignored
    pixels per update.

    Args:
        num_classes: K, the number of evaluated classes (after ``pred_remap``).
        ignore_index: Ground-truth value that is never scored (None: every pixel is scored).
        device: Where the confusion matrix lives.
        class_names: Optional K names, used by :meth:`summary_table` and :func:`ovcore.evaluate.evaluate`.
        seen_classes: Class ids for ``"mIoU_seen"``. If only one of seen/unseen is given, the other is its complement.
        unseen_classes: Class ids for ``"mIoU_unseen"``; ``"hIoU"`` is reported when a split is known.
        pred_remap: Applied to every prediction before validation, e.g. :func:`voc20b_collapse`.
        iou_convention: ``"mmseg"`` (default: a class with zero union is nan) or ``"detectron2"`` (additionally, a
            class absent from the ground truth is nan). See the module docstring.

    Example:
        >>> ev = SegEvaluator(3)
        >>> ev.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 255]]))
        >>> ev.compute()["mIoU"]
        100.0
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = 255,
        device: torch.device | str | None = None,
        class_names: Sequence[str] | None = None,
        seen_classes: Sequence[int] | None = None,
        unseen_classes: Sequence[int] | None = None,
        *,
        pred_remap: Callable[[torch.Tensor], torch.Tensor] | None = None,
        iou_convention: IoUConvention = "mmseg",
    ) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if iou_convention not in _CONVENTIONS:
            raise ValueError(f"iou_convention must be one of {_CONVENTIONS}, got {iou_convention!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(f"got {len(class_names)} class_names for num_classes={self.num_classes}")
        self.class_names = list(class_names) if class_names is not None else None
        seen = _check_class_ids(seen_classes, self.num_classes, "seen_classes")
        unseen = _check_class_ids(unseen_classes, self.num_classes, "unseen_classes")
        if seen is not None and unseen is not None and set(seen) & set(unseen):
            raise ValueError(f"seen and unseen classes overlap: {sorted(set(seen) & set(unseen))[:10]}")
        if seen is not None and unseen is None:
            unseen = [c for c in range(self.num_classes) if c not in set(seen)]
        elif unseen is not None and seen is None:
            seen = [c for c in range(self.num_classes) if c not in set(unseen)]
        self.seen_classes, self.unseen_classes = seen, unseen
        self.pred_remap = pred_remap
        self.iou_convention: IoUConvention = iou_convention
        self._fixed_device = device is not None
        self._conf = torch.zeros(
            self.num_classes, self.num_classes, dtype=torch.int64, device=device if device is not None else "cpu"
        )

    @property
    def confusion(self) -> torch.Tensor:
        """The accumulated ``(K, K)`` int64 matrix, rows = ground truth, columns = prediction."""
        return self._conf

    @property
    def device(self) -> torch.device:
        return self._conf.device

    def reset(self) -> None:
        """Zero the confusion matrix."""
        self._conf.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predictions.

        Args:
            pred: Integer class ids, ``(N, H, W)`` or ``(H, W)``; any integer dtype, any device.
            target: Ground truth of the same shape; ``ignore_index`` pixels are skipped.

        Raises:
            ValueError: On a shape mismatch, a floating-point input, a prediction outside ``[0, K)`` (after
                ``pred_remap``) anywhere, or a ground-truth value outside ``[0, K)`` that is not the ignore index
                (the message names the values: usually a wrong label convention or ignore value).
        """
        pred, target = torch.as_tensor(pred), torch.as_tensor(target)
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        for what, t in (("pred", pred), ("target", target)):
            if t.is_floating_point() or t.is_complex():
                raise ValueError(f"{what} must hold integer class ids, got dtype {t.dtype} (take argmax first)")
        if not self._fixed_device and self._conf.device != pred.device:
            self._conf = self._conf.to(pred.device)
        if self.pred_remap is not None:
            pred = self.pred_remap(pred)
        k = self.num_classes
        # int64 before the arithmetic: uint8/int16 labels would overflow in target * K + pred.
        pred = pred.to(self._conf.device, torch.int64).reshape(-1)
        target = target.to(self._conf.device, torch.int64).reshape(-1)
        if pred.numel() == 0:
            return

        # One host sync for all range checks; the masks below are only built when the labels leave [0, K)
        # (ignore pixels or a convention error), or when the ignore value is itself a class id.
        t_lo, t_hi, p_lo, p_hi = torch.stack([*torch.aminmax(target), *torch.aminmax(pred)]).tolist()
        ignore = self.ignore_index
        valid = None
        if t_lo < 0 or t_hi >= k or (ignore is not None and 0 <= ignore < k):
            valid = target != ignore if ignore is not None else torch.ones_like(target, dtype=torch.bool)
            bad_gt = valid & ((target < 0) | (target >= k))
            if bool(bad_gt.any()):
                values = torch.unique(target[bad_gt]).tolist()
                raise ValueError(
                    f"ground truth has values {values[:10]}{' ...' if len(values) > 10 else ''} outside [0, {k}) "
                    f"that are not ignore_index={ignore}: wrong label convention (e.g. background/ignore not "
                    f"mapped, reduce_zero_label) or wrong num_classes/ignore_index"
                )
        if p_lo < 0 or p_hi >= k:
            values = torch.unique(pred[(pred < 0) | (pred >= k)]).tolist()
            raise ValueError(
                f"predictions have class ids {values[:10]}{' ...' if len(values) > 10 else ''} outside [0, {k}); "
                f"does the score map have more channels than num_classes (missing pred_remap, e.g. voc20b_collapse)?"
            )
        index = target * k + pred
        if valid is not None:
            index = index[valid]
        self._conf += torch.bincount(index, minlength=k * k).view(k, k)

    def all_reduce(self, group: Any = None) -> SegEvaluator:
        """Sum the confusion matrix over all ``torch.distributed`` processes (no-op when not initialised).

        The local matrix is replaced by the global sum, so call it once, on every rank, just before
        :meth:`compute`; calling it twice double counts.

        Returns:
            ``self``, for chaining (``ev.all_reduce().compute()``).
        """
        if dist.is_available() and dist.is_initialized():
            _all_reduce_(self._conf, group=group)
        return self

    def compute(self) -> dict[str, Any]:
        """Metrics in percent: ``"mIoU"``, ``"mAcc"``, ``"pAcc"``, ``"fwIoU"``, per-class ``"IoU"`` and ``"Acc"``
        lists (nan = undefined), plus ``"mIoU_seen"``, ``"mIoU_unseen"``, ``"hIoU"`` when a split is given."""
        return metrics_from_confusion(
            self._conf,
            iou_convention=self.iou_convention,
            seen_classes=self.seen_classes,
            unseen_classes=self.unseen_classes,
        )

    def summary_table(self, results: dict[str, Any] | None = None, digits: int = 2) -> str:
        """Per-class IoU/Acc table followed by the summary numbers (``results`` defaults to :meth:`compute`)."""
        return format_results(
            self.compute() if results is None else results,
            class_names=self.class_names,
            seen_classes=self.seen_classes,
            unseen_classes=self.unseen_classes,
            digits=digits,
        )

    def state_dict(self) -> dict[str, Any]:
        """A CPU snapshot (confusion matrix + settings) to resume or merge an evaluation."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "iou_convention": self.iou_convention,
            "confusion": self._conf.detach().to("cpu").clone(),
        }

    def load_state_dict(self, state: dict[str, Any], *, merge: bool = False) -> None:
        """Restore (or, with ``merge=True``, add) a :meth:`state_dict`.

        Raises:
            ValueError: If the snapshot was taken with a different ``num_classes`` or ``ignore_index``.
        """
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"state has num_classes={state['num_classes']}, evaluator has {self.num_classes}")
        if state.get("ignore_index", self.ignore_index) != self.ignore_index:
            raise ValueError(f"state has ignore_index={state['ignore_index']}, evaluator has {self.ignore_index}")
        conf = torch.as_tensor(state["confusion"])
        if conf.shape != self._conf.shape or conf.is_floating_point():
            raise ValueError(f"state confusion must be an integer {tuple(self._conf.shape)} matrix")
        conf = conf.to(self._conf.device, torch.int64)
        if merge:
            self._conf += conf
        else:
            self._conf.copy_(conf)

    def merge(self, other: SegEvaluator) -> SegEvaluator:
        """Add another evaluator's counts (e.g. from a shard evaluated elsewhere); returns ``self``."""
        self.load_state_dict(other.state_dict(), merge=True)
        return self


def _fmt(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def format_results(
    results: dict[str, Any],
    class_names: Sequence[str] | None = None,
    *,
    seen_classes: Sequence[int] | None = None,
    unseen_classes: Sequence[int] | None = None,
    digits: int = 2,
) -> str:
    """Render :meth:`SegEvaluator.compute` output as a plain-text table (one row per class, then the means)."""
    iou, acc = results["IoU"], results["Acc"]
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(iou))]
    split = {c: "seen" for c in (seen_classes or [])} | {c: "unseen" for c in (unseen_classes or [])}
    width = max([len("class")] + [len(n) for n in names])
    lines = [f"{'id':>4}  {'class':<{width}}  {'IoU':>7}  {'Acc':>7}" + ("  split" if split else "")]
    for i, name in enumerate(names):
        row = f"{i:>4}  {name:<{width}}  {_fmt(iou[i], digits):>7}  {_fmt(acc[i], digits):>7}"
        lines.append(row + (f"  {split.get(i, '-')}" if split else ""))
    keys = ["mIoU", "fwIoU", "mAcc", "pAcc", "mIoU_seen", "mIoU_unseen", "hIoU"]
    lines.append("  ".join(f"{k} {_fmt(results[k], digits)}" for k in keys if k in results))
    return "\n".join(lines)
