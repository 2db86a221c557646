"""Every method through the Hub layout (``ovcore.hub``): ``save_pretrained`` -> folder -> load gives identical
predictions, through the method's own create function, ``ovcore.method.create_model`` and an ``hf-hub:`` source
found offline in a Hugging Face cache laid out by the test; ``sed-convert --hub-folder`` publishes converted weights
with the paper's figures in the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hub_cache import offline_hub_cache, put_in_cache

from ovcore.method import create_model

NAMES = ["sky", "grass", "purple hexagon"]


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny CPU models: one thread avoids OpenMP threads waiting on each other on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return offline_hub_cache(tmp_path, monkeypatch)


def images(h: int = 64, w: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def assert_same_predictions(a: Any, b: Any, names: list[str] | None = None) -> None:
    x = images()
    pa, pb = a.predict(x, names), b.predict(x, names)
    torch.testing.assert_close(pa.probs, pb.probs, rtol=0, atol=0)
    assert pa.class_names == pb.class_names


# ---------------------------------------------------------------------------------------------------- SED


@pytest.fixture(scope="module")
def sed_pair(tmp_path_factory) -> tuple[Any, Path]:
    import sed

    torch.manual_seed(0)
    model = sed.create_sed("sed_tiny", cer_topk=2).eval()  # an override must come back with the weights
    folder = model.save_pretrained(tmp_path_factory.mktemp("sed") / "sed_tiny", metrics={"demo": 12.5})
    return model, folder


def test_sed_round_trip(sed_pair) -> None:
    import sed

    model, folder = sed_pair
    loaded = sed.create_sed(str(folder))
    assert loaded.cfg == model.cfg and loaded.weights_id.startswith("file:")
    assert_same_predictions(model, loaded, NAMES)
    assert_same_predictions(model, create_model(str(folder)), NAMES)
    assert sed.create_sed("sed_tiny", checkpoint=folder).cfg.cer_topk == 2  # its own preset: the saved config
    # Another preset's config with these weights: every key and shape is checked against it.
    with pytest.raises(ValueError, match="sed_tiny: .*does not fit"):
        sed.create_sed("sed_tiny_mlp", checkpoint=folder)


def test_sed_hub_source_offline(sed_pair, hub_cache) -> None:
    import sed

    model, folder = sed_pair
    put_in_cache(folder, hub_cache, "org/sed-tiny")
    assert_same_predictions(model, sed.create_sed("hf-hub:org/sed-tiny"), NAMES)
    assert_same_predictions(model, create_model("hf-hub:org/sed-tiny"), NAMES)
    with_preset = sed.create_sed("sed_tiny", checkpoint="hf-hub:org/sed-tiny", cer_topk=None)
    assert with_preset.cfg.cer_topk is None  # explicit overrides win over the saved config
    with pytest.raises(RuntimeError, match="'org/missing'.*hf download org/missing"):
        sed.create_sed("hf-hub:org/missing")


def test_sed_card_and_foreign_weights(sed_pair, tmp_path) -> None:
    import clipzss
    import maskclip

    _, folder = sed_pair
    card = (folder / "README.md").read_text()
    assert "| demo | mIoU | 12.50 |" in card and '"sed"' in card
    with pytest.raises(ValueError, match="holds 'sed' weights.*not 'maskclip'"):
        maskclip.create_maskclip(str(folder))
    with pytest.raises(ValueError, match="holds 'sed' weights.*not 'clipzss'"):
        clipzss.create_segmenter(folder)


def test_sed_convert_writes_the_hub_layout(tmp_path, capsys) -> None:
    import sed
    from sed.convert import OFFICIAL_PREFIXES, main

    torch.manual_seed(2)
    source = sed.create_sed("sed_tiny").eval()
    inverse = {v: k for k, v in OFFICIAL_PREFIXES.items()}
    official = {}
    for k, v in source.state_dict().items():
        prefix = next(p for p in inverse if k.startswith(p))
        official[inverse[prefix] + k[len(prefix) :]] = v.clone()
    path = tmp_path / "model_final.pth"
    torch.save({"model": official, "iteration": 79999}, path)
    out = tmp_path / "hub"
    assert main([str(path), "--hub-folder", str(out), "--variant", "sed_tiny"]) == 0
    assert "hf upload" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["preset"] == "sed_tiny"
    assert_same_predictions(source, sed.create_sed(str(out)), NAMES)
    assert main([str(path)]) == 2  # neither OUTPUT nor --hub-folder


def test_sed_convert_card_carries_the_papers_figures(tmp_path) -> None:
    from sed.config import load_config
    from sed.convert import write_hub_folder

    folder = write_hub_folder({"decoder.head.bias": torch.zeros(1)}, tmp_path / "b", "sed_convnext_b_768")
    card = (folder / "README.md").read_text()
    for bench, miou in load_config("sed_convnext_b_768").extra["paper_miou"].items():
        assert f"| {bench} | mIoU | {miou:.2f} |" in card
    assert "the SED paper" in card and "not re-measured" in card
    assert json.loads((folder / "config.json").read_text())["metrics"]["A-150"] == 31.8


# ---------------------------------------------------------------------------------------------------- CLIP-ZSS


@pytest.fixture(scope="module")
def clipzss_pair(tmp_path_factory) -> tuple[Any, Path]:
    import clipzss

    torch.manual_seed(0)
    wrapper = clipzss.create_clipzss("clipzss_tiny_convnext_segformer", crop_size=64).eval()
    segmenter = wrapper.to_segmenter()
    folder = segmenter.save_pretrained(tmp_path_factory.mktemp("clipzss") / "seg", metrics={"demo": {"hIoU": 3.0}})
    return segmenter, folder


def test_clipzss_round_trip(clipzss_pair) -> None:
    import clipzss

    segmenter, folder = clipzss_pair
    assert json.loads((folder / "config.json").read_text())["preset"] == "clipzss_tiny_convnext_segformer"
    loaded = clipzss.create_segmenter(folder)
    assert loaded.preset == "clipzss_tiny_convnext_segformer"
    assert_same_predictions(segmenter, loaded)  # the stored vocabulary
    # A name outside the stored table is encoded by the text weights that travel in model.safetensors.
    assert_same_predictions(segmenter, loaded, NAMES)
    assert_same_predictions(segmenter, create_model(str(folder)), NAMES)


def test_clipzss_hub_source_offline(clipzss_pair, hub_cache) -> None:
    import clipzss

    segmenter, folder = clipzss_pair
    put_in_cache(folder, hub_cache, "org/clipzss-tiny")
    assert_same_predictions(segmenter, clipzss.create_segmenter("hf-hub:org/clipzss-tiny"), NAMES)
    assert_same_predictions(segmenter, create_model("hf-hub:org/clipzss-tiny"), NAMES)


# ---------------------------------------------------------------------------------------------------- MaskCLIP


def test_maskclip_round_trip(tmp_path, hub_cache) -> None:
    import maskclip

    torch.manual_seed(0)
    model = maskclip.create_maskclip("maskclip_vit_tiny", window_stride=48)
    folder = model.save_pretrained(tmp_path / "mc")
    loaded = maskclip.create_maskclip(str(folder))
    assert loaded.cfg == model.cfg
    assert_same_predictions(model, loaded, NAMES)
    put_in_cache(folder, hub_cache, "org/maskclip-tiny")
    assert_same_predictions(model, create_model("hf-hub:org/maskclip-tiny"), NAMES)
    same = maskclip.create_maskclip("maskclip_vit_tiny", pretrained=folder, window_stride=48)
    assert_same_predictions(model, same, NAMES)
