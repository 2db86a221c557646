"""The SED command lines: sed-train, sed-eval, sed-predict and sed-demo (CPU, tiny random-init presets).

The commands are called in-process through their ``main(argv)`` (what the console scripts run), so the tests share
one interpreter and its imports; every fixture is generated here.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sed
from ovcore.benchmarks import get_benchmark
from ovcore.cmd.evaluate import first_images, resolve_targets
from ovcore.data import write_demo_dataset
from sed.cli import demo as demo_cli
from sed.cli import eval as eval_cli
from sed.cli import predict as predict_cli
from sed.cli import train as train_cli
from sed.cli._common import build_split
from sed.cli.convert import main as convert_main

COMMANDS = {
    "sed-train": (
        train_cli.main,
        [
            "--preset",
            "--recipe",
            "--dataset",
            "--data-root",
            "--output-dir",
            "--resume-from",
            "--pretrained-clip",
            "--max-iters",
            "--batch-size",
            "--optim.lr",
            "--clip-multiplier",
            "--resume",
            "--eval-every",
            "--crop-size",
        ],
    ),
    "sed-eval": (
        eval_cli.main,
        [
            "--benchmarks",
            "--dataset",
            "--checkpoint",
            "--official-checkpoint",
            "--topk",
            "--pooling",
            "--data-root",
            "--output-dir",
        ],
    ),
    "sed-predict": (
        predict_cli.main,
        ["--vocabulary", "--batch-size", "--preset", "--checkpoint", "--official-checkpoint", "--topk", "--output-dir"],
    ),
    "sed-demo": (demo_cli.main, ["--output-dir", "--iters", "--device", "--quick", "--topk"]),
}


@pytest.fixture(autouse=True)
def _text_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Checkpoints have a file identity, so their vocabularies go to the on-disk cache: keep it inside tmp_path.
    monkeypatch.setenv("OVCORE_CACHE_DIR", str(tmp_path / "cache"))


def _fails(main, argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run a command that must fail with exit code 2; return its stderr."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # tyro's parse errors
        code = exit_.code
    assert code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_demo_dataset(root, num_train=8, num_val=3, size=64)
    return root


@pytest.fixture(scope="module")
def trained_run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sed-train for 2 iterations on the prepared demo data, then --resume to 3."""
    out = tmp_path_factory.mktemp("train") / "run"
    common = [
        "--preset",
        "sed_tiny",
        "--data-root",
        str(demo_root),
        "--output-dir",
        str(out),
        "--batch-size",
        "2",
        "--no-progress",
        "--no-tensorboard",
        "--eval-max-images",
        "2",
        "--checkpoint-every",
        "2",
    ]
    assert train_cli.main([*common, "--max-iters", "2"]) == 0
    assert (out / "checkpoints" / "ckpt_0000002.pt").is_file()
    assert train_cli.main([*common, "--max-iters", "3", "--resume"]) == 0
    return out


# ----------------------------------------------------------------------------------------------------- help
@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_documents_every_option(name: str, capsys: pytest.CaptureFixture) -> None:
    main, options = COMMANDS[name]
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text, f"{name} --help does not list {option}"


def test_console_scripts_are_registered() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["sed-train"] == "sed.cli.train:main"
    assert scripts["sed-eval"] == "sed.cli.eval:main"
    assert scripts["sed-predict"] == "sed.cli.predict:main"
    assert scripts["sed-demo"] == "sed.cli.demo:main"
    assert scripts["sed-convert"] == "sed.cli.convert:main"


# ----------------------------------------------------------------------------------------------------- train
def test_train_defaults_are_the_paper_recipe() -> None:
    cfg = train_cli.parse([])
    assert cfg.model == "sed_convnext_b_768" and cfg.dataset == "coco_stuff_171"
    assert cfg.pretrained_clip == "laion_aesthetic_s13b_b82k"
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.weight_decay_norm) == (2e-4, 1e-4, 0.0)
    assert cfg.clip_multiplier == 0.01 and cfg.clip_grad_norm == 0.01
    assert (cfg.schedule.name, cfg.schedule.warmup_iters, cfg.max_iters, cfg.batch_size) == ("cosine", 0, 80_000, 4)
    assert (cfg.short_edge, cfg.crop_size, cfg.max_size) == (768, 768, 2666)
    large = train_cli.parse(["--preset", "sed_convnext_l_768", "--optim.lr", "1e-4", "--data-root", "/data"])
    assert large.model == "sed_convnext_l_768" and large.pretrained_clip == "laion2b_s29b_b131k_ft_soup"
    assert large.optim.lr == 1e-4 and large.data_root == "/data" and large.max_iters == 80_000
    tiny = train_cli.parse(["--preset", "sed_tiny"])
    assert tiny.model == "sed_tiny" and tiny.dataset == "demo" and tiny.pretrained_clip is None
    assert tiny.recipe == "demo" and cfg.recipe == "paper"
    # --recipe chooses the defaults independently of the model preset.
    tiny_paper = train_cli.parse(["--preset", "sed_tiny", "--recipe", "paper"])
    assert tiny_paper.model == "sed_tiny" and tiny_paper.max_iters == 80_000 and tiny_paper.recipe == "paper"


def test_train_writes_checkpoints_and_resumes(trained_run: Path) -> None:
    ckpts = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    assert ckpts == ["ckpt_0000002.pt", "ckpt_0000003.pt"]
    state = torch.load(trained_run / "checkpoints" / "ckpt_0000003.pt", weights_only=True)
    assert state["iteration"] == 3 and state["config"]["model"] == "sed_tiny"
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [2, 3]
    evals = json.loads((trained_run / "eval" / "iter_0000003.json").read_text())
    assert evals["num_images"] == 2 and 0.0 <= evals["mIoU"] <= 100.0
    # The model's grouping rules (SED.default_optim): the CLIP image tower at a multiplier (random-init presets: 1),
    # torch norm layers without weight decay.
    groups = state["optimizer"]["param_groups"]
    assert 0.0 in {g["weight_decay"] for g in groups} and len({g["weight_decay"] for g in groups}) == 2
    assert any(n.startswith("encoder.") for g in groups for n in g["param_names"])


def test_train_rejects_unknown_preset_and_dataset(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert "--preset" in _fails(train_cli.main, ["--preset", "sed_nope"], capsys)
    err = _fails(train_cli.main, ["--preset", "sed_tiny", "--dataset", "nope", "--output-dir", str(tmp_path)], capsys)
    assert "--dataset" in err and "nope" in err


# ----------------------------------------------------------------------------------------------------- eval
def test_benchmark_names_map_to_datasets() -> None:
    six = resolve_targets(["open-vocabulary"])
    assert [b.name for b in six] == ["a847", "pc459", "a150", "pc59", "pas20", "pas20b"]
    assert [b.dataset for b in six] == [
        "ade20k_847",
        "pascal_context_459",
        "ade20k_150",
        "pascal_context_59",
        "voc20",
        "voc20b",
    ]
    assert [b.name for b in resolve_targets(["A-150", "PAS-20b", "ade20k_150"])] == ["a150", "pas20b"]
    assert resolve_targets(["demo"])[0].dataset == "demo"
    assert resolve_targets(["coco_stuff_171"])[0].dataset == "coco_stuff_171"  # any registered dataset
    with pytest.raises(ValueError, match="--benchmarks.*a847"):
        resolve_targets(["a999"])


def test_demo_dataset_falls_back_to_memory(tmp_path: Path, demo_root: Path) -> None:
    generated = build_split("demo", tmp_path, "val")
    assert len(generated) == 16 and tuple(generated[0]["image"].shape) == (3, 128, 128)
    prepared = build_split("demo", demo_root, "val")
    assert len(prepared) == 3 and tuple(prepared[0]["image"].shape) == (3, 64, 64)
    with pytest.raises(ValueError, match="--data-root.*ovcore prepare"):
        build_split("ade20k_150", tmp_path, "val")


def test_first_images_limits_and_checks(tmp_path: Path) -> None:
    data = build_split("demo", tmp_path, "val")
    assert first_images(data, None, "--max-images") is data
    assert len(first_images(data, 5, "--max-images")) == 5 and len(first_images(data, 99, "--max-images")) == 16
    with pytest.raises(ValueError, match="--eval-max-images must be >= 1"):
        first_images(data, 0, "--eval-max-images")


def test_pas20b_protocol_collapses_background_proxies() -> None:
    protocol = get_benchmark("pas20b").protocol()
    assert len(protocol.vocabulary) == 59 and protocol.num_classes == 21
    assert protocol.score_names[-1] == "background" and len(protocol.score_names) == 21
    assert protocol.pred_remap(torch.tensor([0, 19, 20, 58])).tolist() == [0, 19, 20, 20]
    assert get_benchmark("a847").protocol().ignore_index == 65535


def test_eval_on_demo_data_with_and_without_cer(
    trained_run: Path, demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = trained_run / "checkpoints" / "ckpt_0000003.pt"
    common = [
        "--dataset",
        "demo",
        "--data-root",
        str(demo_root),
        "--checkpoint",
        str(ckpt),
        "--output-dir",
        str(tmp_path),
        "--no-progress",
        "--num-workers",
        "0",
    ]
    assert eval_cli.main(common) == 0  # the preset comes from the checkpoint
    assert eval_cli.main([*common, "--topk", "2"]) == 0
    out = capsys.readouterr().out
    assert "mIoU" in out and "ms/img" in out
    plain = json.loads((tmp_path / "demo.json").read_text())
    cer = json.loads((tmp_path / "demo_cer2.json").read_text())
    assert plain["num_images"] == 3 and plain["cer_topk"] is None and plain["iou_convention"] == "detectron2"
    assert cer["cer_topk"] == 2 and len(cer["stats_mean"]["kept"]) == 3
    assert plain["ms_per_image"] is not None
    summary = json.loads((tmp_path / "summary_cer2.json").read_text())
    assert summary["method"] == "sed" and summary["results"][0]["num_images"] == 3


def test_eval_errors_name_the_argument(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    err = _fails(eval_cli.main, ["--checkpoint", str(tmp_path / "missing.pt"), "--dataset", "demo"], capsys)
    assert "--checkpoint" in err and "missing.pt" in err
    err = _fails(eval_cli.main, ["--official-checkpoint", str(tmp_path / "x.pth"), "--dataset", "demo"], capsys)
    assert "--official-checkpoint" in err
    assert "--benchmarks" in _fails(eval_cli.main, ["--benchmarks", "a999", "--random-weights"], capsys)
    assert "no weights" in _fails(eval_cli.main, ["--dataset", "demo"], capsys)


def _official_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict under the official detectron2 names."""
    prefixes = {
        "encoder.clip.": "sem_seg_head.predictor.clip_model.",
        "decoder.": "sem_seg_head.predictor.transformer.",
    }
    out = {}
    for key, value in state.items():
        ours = next(p for p in prefixes if key.startswith(p))
        out[prefixes[ours] + key[len(ours) :]] = value
    return out


def test_official_and_converted_checkpoints(demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(1)
    model = sed.create_sed("sed_tiny", pretrained_clip=None)
    official = tmp_path / "official.pth"
    torch.save({"model": _official_layout(model.state_dict()), "iteration": 79999}, official)
    argv = [
        "--official-checkpoint",
        str(official),
        "--dataset",
        "demo",
        "--data-root",
        str(demo_root),
        "--output-dir",
        str(tmp_path / "eval"),
        "--no-progress",
        "--num-workers",
        "0",
        "--max-images",
        "2",
    ]
    # The released checkpoints are B or L, told apart by the CLIP stem; a tiny one needs --preset.
    assert "--official-checkpoint" in _fails(eval_cli.main, argv, capsys)
    assert eval_cli.main([*argv, "--preset", "sed_tiny"]) == 0
    assert json.loads((tmp_path / "eval" / "demo.json").read_text())["num_images"] == 2
    assert "converted" in capsys.readouterr().out
    # sed-convert writes the preset into the .safetensors metadata, so sed-predict needs no --preset.
    converted = tmp_path / "tiny.safetensors"
    assert convert_main([str(official), str(converted), "--variant", "sed_tiny"]) == 0
    _write_images(tmp_path / "images")
    argv = [
        str(tmp_path / "images" / "a.png"),
        "--vocabulary",
        "sky,grass",
        "--checkpoint",
        str(converted),
        "--output-dir",
        str(tmp_path / "pred"),
        "--device",
        "cpu",
    ]
    assert predict_cli.main(argv) == 0
    assert "preset sed_tiny" in capsys.readouterr().out
    assert Image.open(tmp_path / "pred" / "a_labels.png").size == (56, 40)


# ----------------------------------------------------------------------------------------------------- predict
def test_old_vocabulary_flags_still_work_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # --classes / --classes-file / --dataset-classes were the spellings of the previous release.
    assert predict_cli.parse(["x.png", "--classes", "cat,dog"]).vocabulary == "cat,dog"
    assert predict_cli.parse(["x.png", "--dataset-classes=demo"]).vocabulary == "demo"
    vocab = tmp_path / "v.txt"
    assert predict_cli.parse(["x.png", "--classes-file", str(vocab)]).vocabulary == str(vocab)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("sed-predict: warning: --") and "--vocabulary" in line for line in err)


def _write_images(folder: Path) -> dict[str, tuple[int, int]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sizes = {"a": (40, 56), "b": (70, 48)}
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return sizes


def test_predict_writes_label_maps_and_overlays(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sizes = _write_images(tmp_path / "images")
    out = tmp_path / "pred"
    argv = [
        str(tmp_path / "images"),
        "--vocabulary",
        "sky,grass|lawn,water",
        "--preset",
        "sed_tiny",
        "--random-weights",
        "--output-dir",
        str(out),
        "--device",
        "cpu",
    ]
    assert predict_cli.main(argv) == 0
    for name, (h, w) in sizes.items():
        labels = Image.open(out / f"{name}_labels.png")
        assert labels.mode == "P" and labels.size == (w, h)
        assert np.asarray(labels).max() < 3
        overlay = Image.open(out / f"{name}_overlay.png")
        assert overlay.mode == "RGB" and overlay.height >= 256  # small images are enlarged for the legend
    assert json.loads((out / "vocabulary.json").read_text())["classes"] == ["sky", "grass, lawn", "water"]
    records = json.loads((out / "predictions.json").read_text())["images"]
    assert len(records) == 2 and all(r["classes_present"] for r in records)
    # CER and a file vocabulary, one image by file name.
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(["sky", "grass", "water", "sand"]))
    argv = [
        str(tmp_path / "images" / "a.png"),
        "--vocabulary",
        str(vocab),
        "--preset",
        "sed_tiny",
        "--random-weights",
        "--topk",
        "1",
        "--output-dir",
        str(tmp_path / "cer"),
        "--device",
        "cpu",
    ]
    assert predict_cli.main(argv) == 0
    record = json.loads((tmp_path / "cer" / "predictions.json").read_text())
    assert record["cer_topk"] == 1 and record["images"][0]["stats"]["kept"][0] <= 4
    assert "sed-predict" in capsys.readouterr().out


def test_predict_errors_name_the_argument(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_images(tmp_path / "images")
    image = str(tmp_path / "images" / "a.png")
    err = _fails(predict_cli.main, [str(tmp_path / "nope.jpg"), "--vocabulary", "cat", "--random-weights"], capsys)
    assert "INPUTS" in err and "nope.jpg" in err
    err = _fails(predict_cli.main, [image, "--vocabulary", " , ", "--random-weights"], capsys)
    assert "--vocabulary" in err and "empty" in err
    err = _fails(predict_cli.main, [image, "--vocabulary", "cat", "--preset", "sed_nope", "--random-weights"], capsys)
    assert "--preset" in err and "sed_nope" in err
    err = _fails(predict_cli.main, [image, "--vocabulary", "cat", "--checkpoint", str(tmp_path / "w.pt")], capsys)
    assert "--checkpoint" in err and "w.pt" in err
    err = _fails(predict_cli.main, [image, "--vocabulary", str(tmp_path / "v.json"), "--random-weights"], capsys)
    assert "--vocabulary" in err and "v.json" in err


# ----------------------------------------------------------------------------------------------------- demo
def test_demo_quick_writes_metrics_and_overlays(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert demo_cli.main(["--quick", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RANDOM CLIP weights" in text and str(out.resolve() / "metrics.json") in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"] == "sed-demo" and metrics["random_clip_weights"] is True
    assert metrics["iterations"] == 3
    for key in ("untrained", "plain", "cer"):
        assert 0.0 <= metrics[key]["mIoU"] <= 100.0
    assert metrics["cer"]["cer_topk"] == 4
    for name in ("plain.json", "cer_top4.json", "untrained.json"):
        assert (out / "eval" / name).is_file()
    overlays = sorted((out / "predictions").glob("*_overlay.png"))
    assert len(overlays) == 2 and len(list((out / "predictions").glob("*_labels.png"))) == 2
    assert len(list((out / "ground_truth").glob("*_overlay.png"))) == 2
    assert (out / "train" / "checkpoints" / "ckpt_0000003.pt").is_file()


def test_demo_replaces_only_its_own_runs(tmp_path: Path) -> None:
    # A previous demo run is cleared (the engine would refuse its later checkpoints) ...
    out = tmp_path / "demo"
    (out / "train" / "checkpoints").mkdir(parents=True)
    (out / "train" / "checkpoints" / "ckpt_0000800.pt").write_bytes(b"")
    (out / "predictions").mkdir()
    (out / "metrics.json").write_text(json.dumps({"command": "sed-demo"}))
    (out / "notes.txt").write_text("mine")
    demo_cli._prepare_output(out)
    assert not (out / "train").exists() and not (out / "predictions").exists() and (out / "notes.txt").exists()
    # ... a training folder the demo did not write is left alone.
    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="--output-dir"):
        demo_cli._prepare_output(other)
