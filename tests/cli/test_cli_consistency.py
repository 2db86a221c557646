"""The commands of every method share their flags and their error convention (README "Command line").

* every command accepts the shared flags of its kind (read from its ``--help``);
* a missing data root, a bad ``--vocabulary`` and a missing image each give ONE line ``prog: error: ...`` (exit 2);
* ``clipzss-predict`` and ``maskclip-predict`` run end to end on tiny random presets over a nested image folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clipzss.cli import eval as clipzss_eval
from clipzss.cli import predict as clipzss_predict
from clipzss.cli import train as clipzss_train
from maskclip.cli import commands as maskclip_cli
from sed.cli import eval as sed_eval
from sed.cli import predict as sed_predict
from sed.cli import train as sed_train

Main = Callable[[Sequence[str]], Any]

PREDICT: dict[str, tuple[Main, list[str]]] = {
    "sed-predict": (sed_predict.main, ["--preset", "sed_tiny", "--random-weights"]),
    "clipzss-predict": (clipzss_predict.main, ["--preset", "clipzss_tiny_convnext_segformer"]),
    "maskclip-predict": (maskclip_cli.predict_main, ["--preset", "maskclip_vit_tiny"]),
}
EVAL: dict[str, tuple[Main, list[str]]] = {
    "sed-eval": (sed_eval.main, ["--preset", "sed_tiny", "--random-weights", "--benchmarks", "demo"]),
    "clipzss-eval": (clipzss_eval.main, ["--preset", "clipzss_tiny_convnext_segformer", "--benchmarks", "demo_zs"]),
    "maskclip-eval": (maskclip_cli.eval_main, ["--preset", "maskclip_vit_tiny", "--benchmarks", "demo"]),
}
TRAIN: dict[str, tuple[Main, list[str]]] = {
    "sed-train": (sed_train.main, ["--preset", "sed_tiny", "--no-progress", "--no-tensorboard"]),
    "clipzss-train": (clipzss_train.main, ["--experiment", "demo", "--no-progress", "--no-tensorboard"]),
}

SHARED = {
    "predict": ("--output-dir", "--preset", "--checkpoint", "--device", "--vocabulary", "--batch-size", "INPUTS"),
    "eval": ("--data-root", "--output-dir", "--preset", "--checkpoint", "--device", "--benchmarks", "--split",
             "--max-images", "--batch-size", "--num-workers"),
    "train": ("--data-root", "--output-dir", "--resume", "--resume-from", "--preset", "--recipe", "--max-iters",
              "--batch-size"),
}
COMMANDS = [(kind, name, main) for kind, table in (("predict", PREDICT), ("eval", EVAL), ("train", TRAIN))
            for name, (main, _) in table.items()]


def _run(main: Main, argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return (0 if code is None else int(code)), captured.out, captured.err


def _one_error(main: Main, argv: Sequence[str], prog: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, _, err = _run(main, argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def _images(root: Path) -> Path:
    """Three images in nested folders, two sizes (batches of 2 split by size)."""
    rng = np.random.default_rng(0)
    for rel, (h, w) in {"top.png": (40, 56), "a/x.png": (40, 56), "a/b/x.jpg": (48, 32)}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return root


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# ------------------------------------------------------------------------------------------------ shared flags
@pytest.mark.parametrize(("kind", "name", "main"), COMMANDS, ids=[c[1] for c in COMMANDS])
def test_shared_flags(kind: str, name: str, main: Main, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(main, ["--help"], capsys)
    assert code == 0
    for flag in SHARED[kind]:
        assert flag in out, f"{name} --help does not show {flag}"


# ------------------------------------------------------------------------------------------------ one-line errors
@pytest.mark.parametrize("name", [*EVAL, *TRAIN])
def test_missing_data_root(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main, argv = {**EVAL, **TRAIN}[name]
    missing = tmp_path / "no_datasets"
    line = _one_error(main, [*argv, "--data-root", str(missing), "--output-dir", str(tmp_path / "out")], name, capsys)
    assert "--data-root" in line and str(missing) in line


@pytest.mark.parametrize("name", list(PREDICT))
def test_bad_vocabulary(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main, argv = PREDICT[name]
    images = _images(tmp_path / "images")
    out = str(tmp_path / "out")
    line = _one_error(main, [str(images), *argv, "--vocabulary", "cat, Cat", "--output-dir", out], name, capsys)
    assert "--vocabulary" in line and "duplicate" in line
    line = _one_error(main, [str(images), *argv, "--vocabulary", str(tmp_path / "v.txt"), "--output-dir", out], name,
                      capsys)
    assert "--vocabulary" in line and "v.txt" in line


@pytest.mark.parametrize("name", list(PREDICT))
def test_missing_image(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main, argv = PREDICT[name]
    line = _one_error(main, [str(tmp_path / "nope.png"), *argv, "--vocabulary", "cat,dog"], name, capsys)
    assert "INPUTS" in line and "nope.png" in line


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("name", ["clipzss-predict", "maskclip-predict"])
def test_predict_end_to_end(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main, argv = PREDICT[name]
    images = _images(tmp_path / "images")
    out = tmp_path / "out"
    code, stdout, err = _run(main, [str(images), *argv, "--vocabulary", "sky, grass|lawn, water", "--batch-size", "2",
                                    "--output-dir", str(out), "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    stems = {"top": (40, 56), "a__x": (40, 56), "a__b__x": (48, 32)}  # nested folders keep distinct names
    for stem, (h, w) in stems.items():
        labels = Image.open(out / f"{stem}_labels.png")
        assert labels.size == (w, h) and np.asarray(labels).max() < 3
        assert Image.open(out / f"{stem}_overlay.png").mode == "RGB"
    record = json.loads((out / "predictions.json").read_text())
    assert record["method"] == name.split("-")[0] and record["num_classes"] == 3
    assert sorted(r["name"] for r in record["images"]) == sorted(stems)
    assert all(r["classes_present"] and r["ms"] >= 0 for r in record["images"])
    assert json.loads((out / "vocabulary.json").read_text())["classes"] == ["sky", "grass, lawn", "water"]
    assert f"{name}: 3 image(s), 3 classes" in stdout
