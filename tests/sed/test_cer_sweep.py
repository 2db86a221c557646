"""``sed-eval --topk 1 2 4 8 none``: every k on the same images and model, a table, cer_sweep.json and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ovcore.cmd.errors import UsageError
from sed.cli import eval as eval_cli
from sed.cli.cer_sweep import format_sweep, parse_topk, plot_sweep, sweep_rows

COMMON = ["--random-weights", "--preset", "sed_tiny", "--benchmarks", "demo", "--max-images", "2", "--num-workers",
          "0", "--warmup", "0", "--no-progress", "--device", "cpu"]


def test_parse_topk_values() -> None:
    assert parse_topk(["1", "2", "4", "8", "none"]) == [1, 2, 4, 8, 0]
    assert parse_topk(["OFF", "0", "8", "8"]) == [0, 8]
    assert parse_topk([]) == [None]  # the preset's own setting
    with pytest.raises(UsageError, match="--topk.*'x'"):
        parse_topk(["2", "x"])
    with pytest.raises(UsageError, match="--topk must be >= 0"):
        parse_topk(["-1"])


def _results(miou: float, ms: float, kept: list[float]) -> dict:
    return {"mIoU": miou, "ms_per_image": ms, "images_per_s": 1000 / ms, "num_images": 4, "vocabulary_size": 150,
            "stats_mean": {"kept": kept}}


def test_rows_table_and_plot(tmp_path: Path) -> None:
    per_k = {k: {"a150": _results(30 + k, 10 * k, [k, k, k])} for k in (1, 2, 8)}
    per_k[0] = {"a150": _results(40.0, 120.0, [150.0, 150.0, 150.0])}
    rows = sweep_rows(per_k)
    assert [r["label"] for r in rows] == ["k=1", "k=2", "k=8", "off"]
    assert rows[-1]["topk"] is None and rows[-1]["kept_mean"] == 150.0
    table = format_sweep(rows)
    assert "kept per stage" in table and "150.0 / 150.0 / 150.0" in table and "off" in table
    path = plot_sweep(rows, tmp_path / "plot.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > image.height > 200


def test_plot_leaves_the_callers_matplotlib_backend_alone(tmp_path: Path) -> None:
    # A library function must not switch the pyplot backend of a notebook or GUI program that calls it.
    import os
    import subprocess
    import sys

    code = ("import matplotlib; from sed.cli.cer_sweep import plot_sweep, sweep_rows\n"
            "r = {'mIoU': 1.0, 'ms_per_image': 2.0, 'stats_mean': {'kept': [3.0]}}\n"
            f"plot_sweep(sweep_rows({{1: {{'demo': r}}}}), {str(tmp_path / 'p.png')!r})\n"
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MPLBACKEND": "svg"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svg" and (tmp_path / "p.png").is_file()


def test_sed_eval_sweeps_k_with_one_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    import sed.cli._common as common

    builds = []
    build = common.model_from_options
    monkeypatch.setattr(common, "model_from_options", lambda *a: builds.append(1) or build(*a))
    out = tmp_path / "sweep"
    assert eval_cli.main([*COMMON, "--output-dir", str(out), "--topk", "1", "2", "none"]) == 0
    assert len(builds) == 1  # one model for every k
    text = capsys.readouterr().out
    assert "CER trade-off" in text and "kept per stage" in text
    sweep = json.loads((out / "cer_sweep.json").read_text())
    rows = {r["label"]: r for r in sweep["rows"]}
    assert list(rows) == ["k=1", "k=2", "off"] and sweep["method"] == "sed"
    assert all(r["num_images"] == 2 and 0 <= r["mIoU"] <= 100 and r["ms_per_image"] > 0 for r in rows.values())
    # An image keeps the union of its pixels' top-k classes: more with a larger k, all 8 demo classes without CER.
    assert rows["k=1"]["kept_mean"] <= rows["k=2"]["kept_mean"] < 8.0
    assert rows["off"]["kept_per_stage"] == [8.0, 8.0, 8.0]
    assert (out / "demo_cer1.json").is_file() and (out / "demo_cer2.json").is_file() and (out / "demo.json").is_file()
    with Image.open(out / "cer_sweep.png") as image:
        assert image.format == "PNG"


def test_one_topk_is_a_plain_evaluation(tmp_path: Path) -> None:
    out = tmp_path / "one"
    assert eval_cli.main([*COMMON, "--output-dir", str(out), "--topk", "2"]) == 0
    assert json.loads((out / "demo_cer2.json").read_text())["cer_topk"] == 2
    assert not (out / "cer_sweep.json").exists()


def test_bad_topk_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert eval_cli.main([*COMMON, "--output-dir", str(tmp_path), "--topk", "2", "all"]) != 0
    err = capsys.readouterr().err
    assert "--topk" in err and "'all'" in err
