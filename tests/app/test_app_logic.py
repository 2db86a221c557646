"""The web demo's logic without a browser: input checks, weights defaults, the model cache and one request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovseg_app.logic import (
    DEMO_CHECKPOINT,
    DEMO_NOTE,
    AppSettings,
    ModelCache,
    default_weights,
    legend_html,
    load_image,
    parse_vocabulary,
    segment,
    weights_note,
    write_samples,
)
from ovseg_app.ui import run_request, vocabulary_text

SETTINGS = AppSettings(max_image_side=256, max_classes=5, max_name_chars=20)


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache("cpu", size=2)


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    write_samples(tmp_path / "samples")
    Image.open(tmp_path / "samples" / "demo_scene_0.png").resize((64, 48)).save(path)
    return path


# ---------------------------------------------------------------------------------------------- vocabulary
def test_vocabulary_list_synonyms_and_dataset_name() -> None:
    assert parse_vocabulary(" cat, dog ,grass|lawn ", SETTINGS) == ["cat", "dog", "grass, lawn"]
    assert parse_vocabulary("demo", AppSettings())[:2] == ["sky", "grass"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("cat, dog, Cat", "duplicate"),
        ("cat, " + "x" * 21, "at most 20 characters"),
        ("a, b, c, d, e, f", "6 classes is over the limit of 5"),
    ],
)
def test_bad_vocabulary_is_one_readable_message(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as info:
        parse_vocabulary(text, SETTINGS)
    assert str(info.value).startswith("vocabulary")


def test_vocabulary_never_reads_a_server_file(tmp_path: Path) -> None:
    # The command line's --vocabulary reads class files; a web page must not open paths on the server.
    secret = tmp_path / "secret.txt"
    secret.write_text("password123\n")
    assert parse_vocabulary(str(secret), AppSettings()) == [str(secret)]


def test_dataset_vocabulary_text_round_trips() -> None:
    text = vocabulary_text("ade20k_847")  # the longest names (synonym lists) must pass the default limits
    from ovcore.data import get_class_names

    # Synonyms come back stripped (the list has one "c p u " with a trailing space).
    expected = [", ".join(s.strip() for s in name.split(", ")) for name in get_class_names("ade20k_847")]
    assert parse_vocabulary(text, AppSettings()) == expected


# -------------------------------------------------------------------------------------------------- images
def test_image_is_read_as_rgb(png: Path) -> None:
    image = load_image(str(png), SETTINGS)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8


def test_not_an_image_is_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="'notes.png' is not an image"):
        load_image(str(fake), SETTINGS)
    with pytest.raises(ValueError, match="none given"):
        load_image(None, SETTINGS)


def test_image_over_the_side_limit_is_rejected_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (257, 8)).save(big)
    with pytest.raises(ValueError, match="257x8 pixels; the limit is 256"):
        load_image(str(big), SETTINGS)


# ------------------------------------------------------------------------------------------------- weights
def test_default_weights_are_the_demo_checkpoint_when_present(tmp_path: Path) -> None:
    assert default_weights("sed_tiny", tmp_path) == ""
    ckpt = tmp_path / DEMO_CHECKPOINT
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert default_weights("sed_tiny", tmp_path) == str(ckpt)
    assert default_weights("maskclip_vit_tiny", tmp_path) == ""
    assert weights_note("sed_tiny", str(ckpt)) == DEMO_NOTE
    assert "uv run sed-demo" in weights_note("sed_tiny", "")
    assert weights_note("maskclip_vit_tiny", "") == ""


def test_a_sed_demo_run_elsewhere_gets_the_demo_note(tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "train" / "checkpoints" / "ckpt_0000300.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert weights_note("sed_tiny", str(ckpt)) == ""
    (tmp_path / "run" / "metrics.json").write_text('{"command": "sed-demo"}')
    assert weights_note("sed_tiny", str(ckpt)) == DEMO_NOTE


def test_missing_weights_file_names_it(cache: ModelCache) -> None:
    with pytest.raises(ValueError, match="weights: 'nowhere.pt' is not a file"):
        cache.get("sed_tiny", "nowhere.pt")


def test_settings_reject_limits_below_one() -> None:
    with pytest.raises(ValueError, match="--max-image-side must be >= 1"):
        AppSettings(max_image_side=0)


# ------------------------------------------------------------------------------------------------ requests
def test_segment_maskclip_overlay_legend_latency(cache: ModelCache, png: Path) -> None:
    image = load_image(str(png), SETTINGS)
    result = segment(cache, image, ["sky", "grass", "red circle"], "maskclip_vit_tiny")
    assert result.overlay.dtype == np.uint8 and result.overlay.ndim == 3
    assert result.legend and {name for name, _, _ in result.legend} <= {"sky", "grass", "red circle"}
    assert abs(sum(area for _, _, area in result.legend) - 100.0) < 0.1
    assert result.kept == [] and result.latency_ms > 0 and result.method == "maskclip"
    model, load_s = cache.get("maskclip_vit_tiny")
    assert load_s == 0.0  # cached per (preset, weights)


def _small_presets() -> list[str]:
    from ovcore.method import get_method, list_methods

    return [get_method(m).small_preset for m in list_methods() if get_method(m).small_preset]


@pytest.mark.parametrize("preset", _small_presets())
def test_every_method_runs_in_the_app(preset: str, png: Path) -> None:
    image = load_image(str(png), SETTINGS)
    result = segment(ModelCache("cpu", size=1), image, ["sky", "grass", "red circle"], preset, cer_k=2)
    assert result.preset == preset and result.overlay.ndim == 3 and result.legend


def test_segment_sed_reports_classes_kept_per_cer_stage(cache: ModelCache, png: Path) -> None:
    image = load_image(str(png), SETTINGS)
    names = ["sky", "grass", "water", "red circle"]
    result = segment(cache, image, names, "sed_tiny", cer_k=1)
    assert len(result.kept) == 3 and all(1 <= k <= 4 for k in result.kept)
    assert result.kept_text().startswith("stage 1: ")
    assert "RANDOM weights" in result.status()  # no demo checkpoint given: the page says the output is noise
    assert segment(cache, image, names, "sed_tiny", cer_k=0).kept == []


def test_pretrained_folder_names_its_own_method(cache: ModelCache, png: Path, tmp_path: Path) -> None:
    from ovcore.hub import save_model
    from ovcore.method import create_model

    folder = save_model(create_model("maskclip_vit_tiny", pretrained=None), tmp_path / "pretrained")
    image = load_image(str(png), SETTINGS)
    result = segment(cache, image, ["sky", "grass"], "sed_tiny", weights=str(folder), cer_k=3)
    assert (result.method, result.preset) == ("maskclip", "maskclip_vit_tiny") and result.kept == []


def test_rewritten_checkpoint_is_built_again(png: Path, tmp_path: Path) -> None:
    import torch

    from ovcore.method import create_model

    ckpt = tmp_path / "weights.pt"
    torch.save(create_model("sed_tiny").state_dict(), ckpt)
    local = ModelCache("cpu", size=2)
    first, _ = local.get("sed_tiny", str(ckpt))
    assert local.get("sed_tiny", str(ckpt))[0] is first
    torch.save(create_model("sed_tiny").state_dict(), ckpt)
    os.utime(ckpt, (ckpt.stat().st_atime, ckpt.stat().st_mtime + 5))
    assert local.get("sed_tiny", str(ckpt))[0] is not first


def test_request_errors_become_a_status_line(cache: ModelCache, png: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\x00\x01")
    cases = [
        ((str(png), "cat, cat", "maskclip_vit_tiny", "", 0), "duplicate"),
        ((str(fake), "cat", "maskclip_vit_tiny", "", 0), "not an image"),
        ((str(png), "cat", "no_such_preset", "", 0), "unknown preset"),
        ((None, "cat", "maskclip_vit_tiny", "", 0), "none given"),
    ]
    for args, expected in cases:
        overlay, legend, kept, latency, status = run_request(cache, SETTINGS, *args)
        assert overlay is None and status.startswith("Error: ") and expected in status, status
        assert "Traceback" not in status


def test_request_success(cache: ModelCache, png: Path) -> None:
    overlay, legend, kept, latency, status = run_request(cache, SETTINGS, str(png), "sky, grass", "sed_tiny", "", 2)
    assert overlay is not None and status.startswith("Done: sed / sed_tiny")
    assert "ms on cpu" in latency and kept.startswith("stage 1:")
    assert "legend-name" in legend


def test_legend_escapes_names() -> None:
    text = legend_html([("<script>alert(1)</script>", "#ff0000", 50.0)], 3)
    assert "<script>" not in text and "&lt;script&gt;" in text and "2 other classes" in text


def test_help_imports_neither_torch_nor_gradio() -> None:
    code = ("import sys; from ovseg_app.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'gradio' not in sys.modules, sorted(sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--max-image-side" in out.stdout
