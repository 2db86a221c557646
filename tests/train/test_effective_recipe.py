"""The effective recipe (ovcore.train.recipe): printed at the start of every run and saved in config.json, with the
sections of both methods (sed-train, clipzss-train), so a run can be compared with a paper without reading code."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from train_fixtures import RandomSegmentation, TinySegmenter, tiny_config

import ovcore.train
from ovcore.data import MMSegTrainTransform, write_demo_dataset
from ovcore.train import TrainResult, describe_transform, format_recipe, train


def test_run_prints_and_saves_the_effective_recipe(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny_config(tmp_path / "run", max_iters=4, batch_size=4, lr=1e-2, schedule_name="poly")
    cfg.optim.weight_decay = 0.05
    cfg.schedule.warmup_iters, cfg.schedule.power = 2, 1.0
    aug = MMSegTrainTransform(crop_size=(8, 8), ratio_range=(0.75, 1.5))
    with caplog.at_level(logging.INFO, logger="ovcore.train"):
        train(cfg, TinySegmenter, RandomSegmentation(10), recipe={"augmentation": describe_transform(aug)})
    recipe = json.loads((tmp_path / "run" / "config.json").read_text())["effective_recipe"]

    training = recipe["training"]
    assert (training["train_images"], training["iterations"], training["global_batch"]) == (10, 4, 4)
    assert training["epochs"] == pytest.approx(1.6) and training["batch_per_process_step"] == 4
    opt = recipe["optimizer"]
    assert opt["type"] == "AdamW" and opt["betas"] == [0.9, 0.999]
    groups = {g["weight_decay"]: g for g in opt["groups"]}
    assert set(groups) == {0.0, 0.05}  # GroupNorm exempt, convolutions (biases too) decayed
    assert groups[0.0]["examples"] == ["norm.weight", "norm.bias"] and groups[0.0]["lr"] == 1e-2
    assert groups[0.05]["tensors"] == 4 and groups[0.05]["parameters"] == 3 * 8 * 9 + 8 + 8 * 4 + 4
    schedule = recipe["schedule"]
    assert (schedule["name"], schedule["warmup_iters"], schedule["power"]) == ("poly", 2, 1.0)
    lr_at = schedule["lr_at_iteration"][0]
    assert set(lr_at) == {"0", "2", "3"} and lr_at["0"] == pytest.approx(1e-2 * 1e-6)
    assert lr_at["2"] == pytest.approx(1e-2 * 0.5)  # poly power 1 half-way, after the warm-up
    augmentation = recipe["augmentation"]
    assert augmentation["type"] == "MMSegTrainTransform" and augmentation["ratio_range"] == [0.75, 1.5]
    assert augmentation["crop_size"] == [8, 8] and "generator" not in augmentation

    text = caplog.text
    assert "training.train_images: 10" in text and "optimizer.group" in text
    assert "augmentation.ratio_range: [0.75, 1.5]" in text and "schedule.lr_at_iteration" in text


def test_format_recipe_one_line_per_value_and_group() -> None:
    recipe = {
        "training": {"train_images": 10582, "epochs": 30.24},
        "optimizer": {
            "type": "AdamW",
            "groups": [
                {"name": "head_decay", "lr": 6e-4, "lr_mult": 10.0, "weight_decay": 0.01, "tensors": 3,
                 "parameters": 1234, "examples": ["a.weight"]},
            ],
        },
    }  # fmt: skip
    lines = format_recipe(recipe).splitlines()
    assert "  training.train_images: 10582" in lines and "  optimizer.type: AdamW" in lines
    assert any(line.startswith("  optimizer.group head_decay: lr 0.0006 (x10), weight decay 0.01") for line in lines)


# ------------------------------------------------------------------------------------------------ both methods


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_demo_dataset(root, num_train=6, num_val=2, size=64)
    return root


def _capture_train(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the engine by a recorder (the commands import ``ovcore.train.train`` when they run)."""
    calls: dict[str, Any] = {}

    def fake_train(cfg: Any, model: Any, dataset: Any, **kwargs: Any) -> TrainResult:
        calls.update(cfg=cfg, dataset=dataset, **kwargs)
        return TrainResult(0, output_dir=Path(cfg.output_dir), is_main=False)

    monkeypatch.setattr(ovcore.train, "train", fake_train)
    return calls


def test_clipzss_train_gives_its_recipe(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clipzss.cli import train as train_cli

    calls = _capture_train(monkeypatch)
    args = ["--experiment", "demo", "--data-root", str(demo_root), "--output-dir", str(tmp_path / "run")]
    train_cli.run(train_cli.parse_args([*args, "--model.crop-size", "64"]))
    recipe = calls["recipe"]
    aug = recipe["augmentation"]
    assert aug["type"] == "MMSegTrainTransform"
    assert (aug["scale"], aug["ratio_range"], aug["crop_size"]) == ([256, 64], [0.5, 2.0], [64, 64])
    assert (aug["cat_max_ratio"], aug["flip_prob"], aug["photometric"]) == (0.75, 0.5, True)
    assert aug["pad_value"] == [124, 116, 104] and aug["ignore_index"] == 255
    assert recipe["method"]["recipe"] == "demo" and recipe["evaluation"]["test_mode"] == "whole"
    assert len(calls["dataset"]) == 6


def test_sed_train_gives_its_recipe(demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sed.cli import train as train_cli

    calls = _capture_train(monkeypatch)
    args = ["--preset", "sed_tiny", "--data-root", str(demo_root), "--output-dir", str(tmp_path / "run")]
    train_cli.run(train_cli.parse([*args, "--eval-every", "0", "--no-eval-at-end"]))
    recipe = calls["recipe"]
    aug = recipe["augmentation"]
    cfg = calls["cfg"]
    assert aug["type"] == "SEDTrainTransform"
    assert (aug["short_edge"], aug["max_size"], aug["crop_size"]) == (cfg.short_edge, cfg.max_size, cfg.crop_size)
    assert recipe["method"]["name"] == "sed" and recipe["method"]["clip_multiplier"] == cfg.clip_multiplier
    assert len(calls["dataset"]) == 6
