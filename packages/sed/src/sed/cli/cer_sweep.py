"""``sed-eval --topk 1 2 4 8 none``: the speed / accuracy trade-off of category early rejection as a table and a plot.

Every k is scored on the same images with the same model: the CER ablation of the SED paper (Sec. 4.4, Table 7;
CER itself is Sec. 3.3): fewer classes kept per decoder stage, less time, some mIoU. The sweep writes
``cer_sweep.json`` (one row per benchmark and k: mIoU, ms per image, mean classes kept per stage) and
``cer_sweep.png`` (two panels: mIoU against ms per image, and mIoU against the classes kept per stage, points
labelled by k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ovcore.cmd.errors import UsageError, check_min

__all__ = ["SWEEP_COLUMNS", "format_sweep", "parse_topk", "plot_sweep", "sweep_rows", "write_sweep"]

_OFF = ("none", "off", "0")

SWEEP_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("benchmark", "benchmark", 0),
    ("CER k", "label", 0),
    ("mIoU", "mIoU", 1),
    ("ms/img", "ms_per_image", 1),
    ("img/s", "images_per_s", 2),
    ("kept per stage", "kept_text", 0),
)
"""Columns of the sweep table (``ovcore.cmd.tables.format_table``)."""


def parse_topk(values: Sequence[str], option: str = "--topk") -> list[int | None]:
    """``--topk`` values -> CER k's, in order, each once: ``none`` / ``off`` / ``0`` -> 0 (plain decoder).

    An empty list gives ``[None]``: the preset's own setting.

    Raises:
        UsageError: a value that is neither a whole number >= 0 nor ``none`` (the message names ``option``).
    """
    out: list[int | None] = []
    for raw in values:
        text = raw.strip().lower()
        if text in _OFF:
            k = 0
        else:
            try:
                k = int(text)
            except ValueError:
                raise UsageError(
                    f"{option}: expected whole numbers or 'none', got {raw!r} (e.g. --topk 1 2 4 8 none)"
                ) from None
            check_min(option, k, 0, hint="0 or 'none' turns CER off")
        if k not in out:
            out.append(k)
    return out or [None]


def _label(topk: int | None) -> str:
    return f"k={topk}" if topk else "off"


def sweep_rows(results: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per benchmark and k from ``{k: {benchmark: results of run_eval}}``, grouped by benchmark.

    ``kept_per_stage`` is the mean number of classes each decoder stage kept (all of them without CER);
    ``kept_mean`` is its mean over the stages.
    """
    rows = []
    for topk, per_bench in results.items():
        for bench, r in per_bench.items():
            kept = [float(v) for v in (r.get("stats_mean") or {}).get("kept") or []]
            rows.append({
                "benchmark": bench, "topk": topk or None, "label": _label(topk), "mIoU": r.get("mIoU"),
                "ms_per_image": r.get("ms_per_image"), "images_per_s": r.get("images_per_s"),
                "num_images": r.get("num_images"), "vocabulary_size": r.get("vocabulary_size"),
                "kept_per_stage": kept, "kept_mean": sum(kept) / len(kept) if kept else None,
                "kept_text": " / ".join(f"{v:.1f}" for v in kept) or "-",
            })
    order = list(dict.fromkeys(r["benchmark"] for r in rows))
    return sorted(rows, key=lambda r: order.index(r["benchmark"]))


def format_sweep(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sweep as an aligned text table."""
    from ovcore.cmd.tables import format_table

    return format_table(rows, SWEEP_COLUMNS)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _merged_labels(points: Sequence[tuple[float, float, str]]) -> dict[tuple[float, float], str]:
    """One label per distinct point: k's that land on the same spot (e.g. k=8 and off with 8 classes) share it."""
    out: dict[tuple[float, float], str] = {}
    for x, y, label in points:
        out[(x, y)] = f"{out[(x, y)]}, {label}" if (x, y) in out else label
    return out


def _panel(ax: Any, rows: Sequence[Mapping[str, Any]], x_key: str, xlabel: str) -> None:
    """One panel: a line per benchmark through its k's in increasing order (the plain decoder last), each point
    labelled by its k."""
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        mine = sorted((r for r in rows if r["benchmark"] == bench), key=lambda r: r["topk"] or math.inf)
        points = [(r[x_key], r["mIoU"], r["label"]) for r in mine if _finite(r[x_key]) and _finite(r["mIoU"])]
        if not points:
            continue
        xs, ys, _ = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=bench)
        for (x, y), label in _merged_labels(points).items():
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    xs = [r[x_key] for r in rows if _finite(r[x_key]) and r[x_key] > 0]
    if xs and max(xs) / min(xs) > 20:  # e.g. k = 1 .. 8 beside a plain decoder keeping all 150 classes
        ax.set_xscale("log")
    ax.margins(x=0.1)  # room for the labels of the outermost points
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)


def plot_sweep(rows: Sequence[Mapping[str, Any]], path: str | Path,
               title: str = "SED category early rejection") -> Path:
    """Draw the trade-off figure (PNG, no display needed); returns the path.

    Left: mIoU against ms per image; right: mIoU against the mean classes kept per decoder stage. The figure is a
    plain ``matplotlib.figure.Figure`` rendered by Agg, not a pyplot one: no GUI toolkit is imported and the
    caller's pyplot backend and open figures are left alone.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    speed, kept = fig.subplots(1, 2)
    _panel(speed, rows, "ms_per_image", "ms per image")
    _panel(kept, rows, "kept_mean", "classes kept per decoder stage (mean)")
    if len({r["benchmark"] for r in rows}) > 1:
        speed.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_sweep(rows: Sequence[Mapping[str, Any]], out: str | Path, info: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``cer_sweep.json`` and ``cer_sweep.png`` into ``out``; returns their paths."""
    from ovcore.files import write_json

    out = Path(out)
    table = [{k: v for k, v in r.items() if k != "kept_text"} for r in rows]
    json_path = write_json(out / "cer_sweep.json", {**info, "rows": table})
    return json_path, plot_sweep(rows, out / "cer_sweep.png")
