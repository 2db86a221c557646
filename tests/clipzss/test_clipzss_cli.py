"""The ``clipzss-train`` / ``clipzss-eval`` entry points on the demo scenes (tiny random models, CPU).

One short training run (2 iterations, 64-pixel crops) is shared by the tests of the module: its checkpoints, its
inference checkpoint, a resumed continuation and the evaluations of both protocols. Bad inputs must fail with one
line naming the option, before any model is built.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from clipzss.cli import eval as eval_cli
from clipzss.cli import train as train_cli

TRAIN_ARGS = [
    "--experiment", "demo",
    "--max-iters", "2",
    "--batch-size", "2",
    "--model.crop-size", "64",
    "--checkpoint-every", "1",
    "--keep-last", "0",
    "--eval-every", "0",
    "--log-every", "1",
    "--no-progress",
    "--no-tensorboard",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo scenes (8 train, 4 val, 64 px) plus a two-image fake VOC-20 layout for the cross-dataset protocol."""
    from ovcore.data import generate_demo_scene, write_demo_dataset
    from ovcore.data.io import write_image, write_label

    root = tmp_path_factory.mktemp("datasets")
    write_demo_dataset(root, num_train=8, num_val=4, size=64)
    for i in range(2):
        image, label = generate_demo_scene(i, size=(64, 80), split="val")
        voc_label = np.where(label < 4, 255, label + 10).astype(np.uint8)  # ids 14..17 of the 20 VOC classes
        write_image(root / "VOCdevkit/VOC2012/JPEGImages" / f"fake_{i}.jpg", image)
        write_label(root / "VOCdevkit/VOC2012/annotations_detectron2/val" / f"fake_{i}.png", voc_label)
    return root


@pytest.fixture(scope="module")
def run_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-iteration demo run (evaluated at the end)."""
    out = tmp_path_factory.mktemp("run") / "demo"
    train_cli.main([*TRAIN_ARGS, "--data-root", str(data_root), "--output-dir", str(out)])
    return out


def _no_image_tower(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of building a CLIP image tower (or the teacher) fail."""
    import open_clip
    import open_clip.model
    import open_clip.transformer

    import clipzss.teacher
    import ovcore.clip

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CLIP image tower must not be built for inference")

    monkeypatch.setattr(open_clip.transformer.VisionTransformer, "__init__", forbidden)
    monkeypatch.setattr(open_clip.model.CLIP, "__init__", forbidden)
    monkeypatch.setattr(open_clip, "create_model", forbidden)
    monkeypatch.setattr(ovcore.clip, "create_clip", forbidden)
    monkeypatch.setattr(ovcore.clip, "ViTCLIPEncoder", forbidden)
    monkeypatch.setattr(clipzss.teacher.CLIPTeacher, "__init__", forbidden)


# ------------------------------------------------------------------------------------------------------------ help


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        train_cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--preset", "--experiment", "--recipe", "--benchmark", "--teacher-pretrained", "--student-pretrained",
        "--data-root", "--output-dir", "--resume", "--resume-from", "--max-iters", "--optim.lr",
        "--schedule.warmup-iters", "--model.plm.fusion-threshold",
        "--model.seen-calibration", "--data.val-max-images", "cross_coco_stuff",
    ):  # fmt: skip
        assert flag in text, flag
    with pytest.raises(SystemExit) as exc:
        eval_cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--checkpoint", "--preset", "--benchmarks", "--data-root", "--output-dir", "--mode", "--calibration",
                 "--text-weights", "--max-images", "zero-shot", "cross-dataset", "a150"):  # fmt: skip
        assert flag in text, flag


def test_console_scripts_are_registered() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["clipzss-train"] == "clipzss.cli.train:main"
    assert scripts["clipzss-eval"] == "clipzss.cli.eval:main"
    assert scripts["clipzss-predict"] == "clipzss.cli.predict:main"


# --------------------------------------------------------------------------------------------------------- presets


def test_presets_follow_the_paper_recipes() -> None:
    voc = train_cli.build_config("voc_zs")
    assert (voc.max_iters, voc.batch_size, voc.model.crop_size) == (20_000, 16, 512)
    assert (voc.optim.lr, voc.optim.weight_decay) == (6e-5, 0.01)
    assert (voc.schedule.name, voc.schedule.warmup_iters, voc.schedule.power) == ("poly", 1500, 1.0)
    assert (voc.model.teacher.model_name, voc.model.teacher.pretrained) == ("ViT-B-16", "openai")
    assert (voc.model.dataset, voc.model.teacher.templates, voc.model.seen_calibration) == (
        "voc_zs",
        "zegclip_single",
        0,
    )
    coco = train_cli.build_config("coco_stuff_zs")
    assert (coco.max_iters, coco.model.dataset, coco.model.seen_calibration) == (80_000, "coco_stuff_zs", 1.5)
    assert train_cli.build_config("context_zs").max_iters == 40_000
    cross = train_cli.build_config("cross_coco_stuff")
    assert (cross.max_iters, cross.batch_size, cross.benchmark) == (60_000, 32, "coco_stuff_zs")
    demo = train_cli.build_config("demo")
    assert demo.benchmark == "demo_zs" and demo.model.teacher.pretrained is None


def test_model_preset_and_benchmark_set_the_model_defaults(data_root: Path) -> None:
    cfg = train_cli.parse_args(["--experiment", "voc_zs", "--preset", "clipzss_convnext_t_upernet"])
    assert cfg.model.student.backbone == "convnext_tiny" and cfg.model.dataset == "voc_zs"
    assert cfg.preset == "clipzss_convnext_t_upernet" and cfg.experiment == "voc_zs"
    cfg = train_cli.parse_args(
        ["--experiment", "voc_zs", "--benchmark", "context_zs", "--model.plm.fusion-threshold", "0.9"]
    )
    assert (cfg.model.dataset, cfg.model.teacher.templates, cfg.model.plm.fusion_threshold) == (
        "context_zs",
        "zegclip",
        0.9,
    )
    cfg = train_cli.parse_args(["--experiment", "demo", "--teacher-pretrained", "none", "--student-pretrained", "none"])
    assert cfg.teacher_pretrained == "none"


def test_old_flag_spellings_still_work_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    # The previous release: --preset named the experiment, --model-preset the model, --data.root the root.
    cfg = train_cli.parse_args(["--preset", "context_zs", "--model-preset", "clipzss_convnext_t_upernet",
                                "--data.root", "/data"])  # fmt: skip
    assert (cfg.experiment, cfg.preset, cfg.data_root) == ("context_zs", "clipzss_convnext_t_upernet", "/data")
    assert cfg.max_iters == 40_000 and cfg.model.student.backbone == "convnext_tiny"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("clipzss-train: warning: --") for line in err)
    assert "--experiment context_zs" in err[0] and "--preset" in err[1] and "--data-root" in err[2]


# ------------------------------------------------------------------------------------------------------- training


def test_train_writes_checkpoints_and_an_inference_checkpoint(run_dir: Path) -> None:
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts == ["ckpt_0000001.pt", "ckpt_0000002.pt"]
    payload = torch.load(run_dir / "checkpoints" / train_cli.INFERENCE_NAME, weights_only=True)
    assert payload["format"] == "clipzss-inference-v1" and payload["benchmark"] == "demo_zs"
    assert payload["text_embeddings"].shape[0] == 8 and payload["seen_class_names"][-1] == "blue square"
    # student + text embeddings only: no teacher image tower, no training-only modules
    assert not any("visual" in k for k in payload["student"])
    assert "visual.conv1.weight" not in payload["text_encoder"].get("state_dict", {})
    results = json.loads((run_dir / "eval" / "iter_0000002.json").read_text())
    assert results["benchmark"] == "demo_zs" and {"pAcc", "mIoU_seen", "mIoU_unseen", "hIoU"} <= set(results)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2]


def test_resume_continues_exactly_from_the_latest_checkpoint(
    data_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The GLM's CLS-token bank is part of the checkpoint (extra state), so exactness holds with the default bank.
    args = [*TRAIN_ARGS, "--no-eval-at-end", "--deterministic", "--data-root", str(data_root)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_cli.main([*args, "--output-dir", str(full)])
    shutil.copytree(full, cut)
    (cut / "checkpoints" / "ckpt_0000002.pt").unlink()  # as if killed between iterations 1 and 2
    with caplog.at_level(logging.INFO, logger="ovcore.train"):
        train_cli.main([*args, "--resume", "--output-dir", str(cut)])
    assert any("resumed from" in r.getMessage() and "iteration 1" in r.getMessage() for r in caplog.records)
    records = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (full, cut)]
    assert [(r["iteration"], r["loss"]) for r in records[0]] == [(r["iteration"], r["loss"]) for r in records[1]]
    assert [r["iteration"] for r in records[1]] == [1, 2]
    state_a = torch.load(full / "checkpoints" / "ckpt_0000002.pt", weights_only=True)["model"]
    state_b = torch.load(cut / "checkpoints" / "ckpt_0000002.pt", weights_only=True)["model"]
    for key, value in state_a.items():
        torch.testing.assert_close(state_b[key], value, rtol=0, atol=0)
    payload = torch.load(cut / "checkpoints" / train_cli.INFERENCE_NAME, weights_only=True)
    for key, value in payload["student"].items():  # the inference checkpoint is the final student
        torch.testing.assert_close(value, state_b[f"student.{key}"], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------- evaluation


def test_eval_zero_shot_without_the_clip_image_tower(
    run_dir: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_image_tower(monkeypatch)
    out = tmp_path / "eval"
    eval_cli.main(["--checkpoint", str(run_dir), "--data-root", str(data_root), "--output-dir", str(out),
                   "--no-progress", "--num-workers", "0", "--warmup", "1"])  # fmt: skip
    table = capsys.readouterr().out
    for column in ("pAcc", "mIoU(S)", "mIoU(U)", "hIoU", "img/s", "demo_zs"):
        assert column in table
    assert "random weights" in table  # says honestly that the demo teacher is random
    res = json.loads((out / "demo_zs.json").read_text())
    assert res["protocol"] == "zero-shot" and res["num_images"] == 4
    assert res["seen_classes"] == [0, 1, 2, 3, 4, 5] and res["unseen_classes"] == [6, 7]
    assert res["images_per_s"] > 0 and 0 <= res["pAcc"] <= 100
    # same numbers as the training run's own final evaluation (student + text embeddings == the training model)
    during = json.loads((run_dir / "eval" / "iter_0000002.json").read_text())
    assert res["pAcc"] == pytest.approx(during["pAcc"]) and res["hIoU"] == pytest.approx(during["hIoU"])
    summary = json.loads((out / "summary.json").read_text())
    assert [r["benchmark"] for r in summary["results"]] == ["demo_zs"]

    # The metrics against numbers computed here: a hand-made prediction (8x8 blocks cycling through the 8 classes,
    # so every class has hits and misses) scored on the ground-truth PNGs with a confusion matrix built below.
    from PIL import Image

    from clipzss.segmenter import ZeroShotSegmenter

    def blocks(self: object, images: torch.Tensor, *, mode: object = None) -> torch.Tensor:
        h, w = images.shape[-2:]
        cls = (torch.arange(h)[:, None] // 8 + torch.arange(w)[None, :] // 8) % 8
        return torch.nn.functional.one_hot(cls, 8).permute(2, 0, 1)[None].float().expand(len(images), -1, -1, -1)

    monkeypatch.setattr(ZeroShotSegmenter, "predict", blocks)
    eval_cli.main(["--checkpoint", str(run_dir), "--data-root", str(data_root), "--output-dir", str(tmp_path / "hand"),
                   "--no-progress", "--num-workers", "0"])  # fmt: skip
    got = json.loads((tmp_path / "hand" / "demo_zs.json").read_text())
    gt = np.stack([np.asarray(Image.open(p)) for p in sorted((data_root / "demo/annotations/val").glob("*.png"))])
    assert gt.shape == (4, 64, 64)
    yy, xx = np.mgrid[:64, :64]
    pred = np.broadcast_to((yy // 8 + xx // 8) % 8, gt.shape)
    keep = gt != 255
    confusion = np.zeros((8, 8), dtype=np.int64)
    np.add.at(confusion, (gt[keep], pred[keep]), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = 100.0 * tp / union  # every class is predicted somewhere, so no union is 0
    seen_iou, unseen_iou = iou[:6].mean(), iou[6:].mean()
    assert 0 < seen_iou < 100 and 0 < unseen_iou < 100  # a case where the harmonic mean is not degenerate
    assert got["IoU"] == pytest.approx(iou.tolist(), abs=1e-4)
    assert got["pAcc"] == pytest.approx(100.0 * tp.sum() / keep.sum(), abs=1e-4)
    assert got["mIoU_seen"] == pytest.approx(seen_iou, abs=1e-4)
    assert got["mIoU_unseen"] == pytest.approx(unseen_iou, abs=1e-4)
    assert got["hIoU"] == pytest.approx(2 * seen_iou * unseen_iou / (seen_iou + unseen_iou), abs=1e-4)


def test_eval_cross_dataset_encodes_new_names_with_the_text_tower_only(
    run_dir: Path, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_image_tower(monkeypatch)
    out = tmp_path / "cross"
    eval_cli.main(["--checkpoint", str(run_dir / "checkpoints" / train_cli.INFERENCE_NAME), "--benchmarks", "voc20",
                   "--data-root", str(data_root), "--output-dir", str(out), "--no-progress", "--num-workers", "0",
                   "--warmup", "0"])  # fmt: skip
    res = json.loads((out / "pas20.json").read_text())  # voc20 is the dataset of the shared benchmark pas20
    assert res["protocol"] == "open-vocabulary" and res["num_classes"] == 20 and res["num_images"] == 2
    assert res.get("mIoU_seen") is None and res["seen_calibration"] == 0.0
    assert res["images_per_s"] > 0 and 0 <= res["mIoU"] <= 100
    # --text-weights: the same text weights given as a CLIP file encode the same vocabulary
    payload = torch.load(run_dir / "checkpoints" / train_cli.INFERENCE_NAME, weights_only=True)
    torch.save(payload["text_encoder"]["state_dict"], tmp_path / "clip_text.pt")
    eval_cli.main(["--checkpoint", str(run_dir), "--benchmarks", "voc20", "--data-root", str(data_root),
                   "--text-weights", str(tmp_path / "clip_text.pt"), "--no-progress",
                   "--num-workers", "0"])  # fmt: skip
    again = json.loads((run_dir / "clipzss-eval" / "pas20.json").read_text())  # the default output folder
    assert again["IoU"] == res["IoU"] and again["pAcc"] == res["pAcc"]
    # Without the text tower in the checkpoint the new names can only come from --text-weights.
    stripped = {**payload, "text_encoder": {k: v for k, v in payload["text_encoder"].items() if k != "state_dict"}}
    torch.save(stripped, tmp_path / "no_text_tower.pt")
    common = ["--checkpoint", str(tmp_path / "no_text_tower.pt"), "--benchmarks", "voc20", "--data-root",
              str(data_root), "--no-progress", "--num-workers", "0"]  # fmt: skip
    assert eval_cli.main([*common, "--output-dir", str(tmp_path / "refused")]) == 2
    eval_cli.main([*common, "--output-dir", str(tmp_path / "tw"), "--text-weights", str(tmp_path / "clip_text.pt")])
    third = json.loads((tmp_path / "tw" / "pas20.json").read_text())
    assert third["IoU"] == res["IoU"] and third["pAcc"] == res["pAcc"]


# ----------------------------------------------------------------------------------------------------- bad inputs


def _error(capsys: pytest.CaptureFixture[str], fn: object, args: list[str]) -> str:
    try:
        code = fn(args)  # type: ignore[operator]
    except SystemExit as exc:  # the parser's own errors
        code = exc.code
    assert code == 2
    return capsys.readouterr().err


def test_unknown_names_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, train_cli.main, ["--experiment", "voc_15_5"])
    assert "--experiment" in err and "voc_15_5" in err
    err = _error(capsys, train_cli.main, ["--experiment", "demo", "--benchmark", "voc"])
    assert "--benchmark" in err
    err = _error(capsys, train_cli.main, ["--preset", "swin_xxl"])
    assert "--preset" in err and "swin_xxl" in err
    err = _error(capsys, eval_cli.main, ["--checkpoint", "x.pt", "--benchmarks", "pascal_voc"])
    assert "--benchmarks" in err


def test_missing_paths_name_the_option(
    capsys: pytest.CaptureFixture[str], data_root: Path, run_dir: Path, tmp_path: Path
) -> None:
    err = _error(capsys, train_cli.main, ["--experiment", "demo", "--data-root", str(tmp_path / "nowhere")])
    assert "--data-root" in err and "nowhere" in err
    err = _error(capsys, train_cli.main, ["--experiment", "demo", "--data-root", str(tmp_path)])
    assert "--data-root" in err and "ovcore demo-data" in err  # root exists, the demo layout does not
    err = _error(
        capsys,
        train_cli.main,
        [
            *TRAIN_ARGS,
            "--data-root",
            str(data_root),
            "--output-dir",
            str(tmp_path / "run"),
            "--teacher-pretrained",
            str(tmp_path / "ViT-B-16.pt"),
        ],  # fmt: skip
    )
    assert "--teacher-pretrained" in err and "no such file" in err
    err = _error(capsys, eval_cli.main, ["--checkpoint", str(tmp_path / "missing.pt")])
    assert "--checkpoint" in err and "missing.pt" in err
    err = _error(capsys, eval_cli.main, ["--checkpoint", str(run_dir / "checkpoints" / "ckpt_0000001.pt")])
    assert "training checkpoint" in err and train_cli.INFERENCE_NAME in err
    err = _error(capsys, eval_cli.main, ["--checkpoint", str(run_dir), "--data-root", str(tmp_path / "nowhere")])
    assert "--data-root" in err
    err = _error(capsys, eval_cli.main, ["--checkpoint", str(run_dir), "--benchmarks", "ade20k_150",
                                         "--data-root", str(data_root)])  # fmt: skip
    assert "--data-root" in err and "ade20k_150" in err


def test_model_vocabulary_must_match_the_benchmark(
    capsys: pytest.CaptureFixture[str], data_root: Path, tmp_path: Path
) -> None:
    err = _error(capsys, train_cli.main, [*TRAIN_ARGS, "--data-root", str(data_root), "--output-dir", str(tmp_path),
                                          "--model.seen-classes", "0", "1", "2"])  # fmt: skip
    assert "--benchmark" in err and "3 seen" in err
