"""``sed-demo``: the main job. Train a small SED on the built-in demo scenes on CPU, evaluate it with and without
category early rejection, and write metrics and prediction overlays.

    sed-demo                          # a few minutes on a laptop CPU, results in runs/demo
    sed-demo --output-dir /tmp/demo --iters 600
    sed-demo --quick                  # a smoke test of the whole pipeline (a few iterations)

The demo model starts from RANDOM CLIP weights (no pretrained weights are downloaded), so its numbers show that the
whole pipeline (data, model, losses, optimiser, schedule, checkpoints, evaluation, CER, prediction) learns, not what
the pretrained SED can do; for that, see ``sed-eval --official-checkpoint``.

Output (``--output-dir``, default ``runs/demo``): ``metrics.json`` (before / after training, the learning curve,
plain vs. CER), ``eval/*.json`` (full ovcore.evaluate results), ``predictions/`` (label maps and overlays written by
the sed-predict code path), ``ground_truth/`` (the same images with their true labels), ``samples/`` (the input
images), ``train/`` (checkpoints, TensorBoard events, metrics.jsonl of the training engine).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tyro

from ovcore.cmd.errors import run_command
from ovcore.cmd.log import quiet_logger, say, setup_logging
from ovcore.cmd.tables import cell as fmt
from ovcore.files import write_json

__all__ = ["DemoConfig", "run", "main"]

DEFAULT_ITERS = 800
HONESTY = (
    "NOTE: this demo uses RANDOM CLIP weights (nothing pretrained is downloaded), so the numbers show that the "
    "pipeline learns on the demo scenes, not the quality of a pretrained SED."
)


@dataclass
class DemoConfig:
    """Train a small SED on the built-in demo scenes (CPU, a few minutes), evaluate it with and without CER, and
    write metrics and prediction overlays. Uses random CLIP weights: it shows the pipeline learns, not pretrained
    quality."""

    output_dir: str = "runs/demo"
    """Folder for metrics.json, eval/, predictions/, ground_truth/, samples/ and train/ (a previous demo run there is
    replaced)."""

    iters: int | None = None
    """Training iterations (default 800, or 3 with --quick)."""

    device: str = "cpu"
    """'cpu', 'auto' (CUDA when available) or 'cuda'."""

    quick: bool = False
    """Smoke test: a few iterations on a few images (for tests / CI); the numbers then stay near chance."""

    topk: int = 4
    """k of category early rejection in the CER evaluation (of the 8 demo classes; the paper's SED-fast uses 8)."""

    preset: str = "sed_tiny"
    """SED preset to train (a random-init one: sed_tiny or sed_tiny_mlp)."""

    batch_size: int = 8
    """Images per optimizer step."""

    lr: float | None = None
    """Base learning rate (default: the sed_tiny recipe of sed-train, 2e-3)."""

    num_train: int = 256
    """Demo scenes in the training split (generated in memory)."""

    num_val: int = 32
    """Demo scenes in the validation split."""

    num_overlays: int = 8
    """Validation images written with prediction and ground-truth overlays."""

    seed: int = 0
    """Seed of the model initialisation, the data order and the scenes."""

    def validate(self) -> None:
        """Check the numeric options before anything is built; the messages name the flags."""
        from ovcore.cmd.errors import check_min, check_positive

        for option, value, minimum in (
            ("--iters", self.iters, 1),
            ("--batch-size", self.batch_size, 1),
            ("--num-train", self.num_train, 1),
            ("--num-val", self.num_val, 1),
            ("--num-overlays", self.num_overlays, 0),
            ("--topk", self.topk, 1),
        ):
            check_min(option, value, minimum)
        check_positive("--lr", self.lr)


class _MemoryScenes:
    """A map-style dataset held in memory (samples computed once) with a random transform applied on every access
    (duck-typed rather than a torch Dataset subclass, so importing this module does not import torch)."""

    def __init__(self, base: Any, transform: Any) -> None:
        self.samples = [base[i] for i in range(len(base))]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.transform(self.samples[index])


def _prepare_output(out: Path) -> None:
    """Replace a previous demo run in ``out``; refuse to touch a training folder the demo did not write."""
    marker = out / "metrics.json"
    is_demo = marker.is_file() and '"sed-demo"' in marker.read_text(encoding="utf-8", errors="replace")
    if (out / "train").exists() and not is_demo:
        raise ValueError(f"--output-dir: {out / 'train'} exists and was not written by sed-demo; choose another folder")
    if is_demo:
        for sub in ("train", "eval", "predictions", "ground_truth", "samples"):
            shutil.rmtree(out / sub, ignore_errors=True)
        marker.unlink()
    out.mkdir(parents=True, exist_ok=True)


def run(cfg: DemoConfig) -> dict[str, Any]:
    """Body of ``sed-demo``; returns the content of ``metrics.json``."""
    # The per-class tables go to eval/*.json and the checkpoint paths to the summary, not between progress bars.
    with quiet_logger("ovcore.evaluate"), quiet_logger("ovcore.train"):
        return _run(cfg)


def _run(cfg: DemoConfig) -> dict[str, Any]:
    import numpy as np

    import sed
    from ovcore.benchmarks import get_benchmark
    from ovcore.cmd.errors import check_output_dir
    from ovcore.cmd.model import LoadedModel
    from ovcore.cmd.predict import predict_images
    from ovcore.data import DEMO_CLASSES, DemoSegmentation, SEDTestTransform, SEDTrainTransform, collate_samples
    from ovcore.data.io import write_image
    from ovcore.train import resolve_device, seed_all, train
    from ovcore.vis import render_overlay
    from sed.cli._common import evaluate_model
    from sed.cli.train import demo_recipe

    start = time.perf_counter()
    cfg.validate()
    check_output_dir(cfg.output_dir, "--output-dir")
    if not sed.is_preset(cfg.preset):
        raise ValueError(f"--preset: unknown SED preset {cfg.preset!r}; available: {', '.join(sed.list_presets())}")
    iters = cfg.iters if cfg.iters is not None else (3 if cfg.quick else DEFAULT_ITERS)
    num_train, num_val = (16, 4) if cfg.quick else (cfg.num_train, cfg.num_val)
    batch_size = min(cfg.batch_size, 4) if cfg.quick else cfg.batch_size
    num_overlays = min(min(cfg.num_overlays, 2) if cfg.quick else cfg.num_overlays, num_val)
    device = resolve_device(cfg.device)
    out = Path(cfg.output_dir)
    _prepare_output(out)

    recipe = demo_recipe(cfg.preset)
    tcfg = replace(
        recipe,
        output_dir=str(out / "train"),
        max_iters=iters,
        batch_size=batch_size,
        optim=replace(recipe.optim, lr=recipe.optim.lr if cfg.lr is None else cfg.lr),
        device=str(device),
        seed=cfg.seed,
        checkpoint_every=iters,
        eval_every=0 if cfg.quick else max(1, iters // 4),
        eval_at_end=True,
        log_every=max(1, min(recipe.log_every, iters)),
    )
    say("=" * 100)
    say(f"sed-demo: training {cfg.preset} on {num_train} procedural demo scenes ({len(DEMO_CLASSES)} classes: "
        f"{', '.join(DEMO_CLASSES)})")
    say(f"  {iters} iterations x {batch_size} images on {device}, lr {tcfg.optim.lr:g}, cosine schedule, "
        f"gradient clipping {tcfg.clip_grad_norm}; evaluation on {num_val} validation scenes")
    say(f"  {HONESTY}")
    say("=" * 100)

    size = sed.get_preset_config(cfg.preset).input_size
    train_tf = SEDTrainTransform(tcfg.short_edge, tcfg.max_size, tcfg.crop_size, color_aug=tcfg.color_aug,
                                 flip_prob=tcfg.flip_prob)
    # Scenes are drawn at twice the network size (legible overlays); the training copies are drawn and resized once
    # up front, because redoing it for every sample (~25 ms each) would cost about as much as the training steps.
    train_set = _MemoryScenes(
        DemoSegmentation(num_train, size=2 * size, seed=cfg.seed, split="train",
                         transform=SEDTestTransform(tcfg.short_edge, tcfg.max_size, resize_label=True)),
        train_tf,
    )
    val_set = DemoSegmentation(num_val, size=2 * size, seed=cfg.seed, split="val")
    protocol = get_benchmark("demo").protocol()

    seed_all(cfg.seed)
    model = sed.create_sed(cfg.preset, pretrained_clip=None, class_names=list(DEMO_CLASSES),
                           clip_lr_multiplier=tcfg.clip_multiplier).to(device)
    model.decoder.pooling_eval = tcfg.eval_pooling
    curve: list[dict[str, float]] = []

    def evaluate_fn(m: Any, iteration: int) -> dict[str, Any]:
        res = evaluate_model(m, val_set, protocol, topk=None, device=device, progress=False)
        curve.append({"iteration": iteration, "mIoU": res["mIoU"], "pAcc": res["pAcc"]})
        say(f"  [iteration {iteration:>4}] validation mIoU {res['mIoU']:5.1f}  pixel accuracy {res['pAcc']:5.1f}")
        return res

    model.eval()
    baseline = evaluate_fn(model, 0)
    t_train = time.perf_counter()
    result = train(tcfg, model, train_set, evaluate_fn=evaluate_fn, collate_fn=collate_samples)
    train_s = time.perf_counter() - t_train
    model.eval()

    plain = result.eval_results[iters]
    write_json(out / "eval" / "plain.json", plain)
    write_json(out / "eval" / "untrained.json", baseline)
    cer = evaluate_model(model, val_set, protocol, topk=cfg.topk, device=device, progress=False,
                         output_json=out / "eval" / f"cer_top{cfg.topk}.json")

    # Overlays through the sed-predict code path: the validation scenes are written as PNG files and read back.
    paths = []
    for i in range(num_overlays):
        sample = val_set[i]
        path = out / "samples" / f"{sample['name']}.png"
        write_image(path, sample["image"])
        paths.append(path)
        gt = sample["label"].numpy()
        image = np.ascontiguousarray(sample["image"].permute(1, 2, 0).numpy())
        (out / "ground_truth").mkdir(parents=True, exist_ok=True)
        render_overlay(image, gt, list(DEMO_CLASSES), title="ground truth", ignore_index=255).save(
            out / "ground_truth" / f"{sample['name']}_overlay.png")
    predict_images(LoadedModel(model, "the trained demo model", predict_options={"k": None}), paths,
                   [p.stem for p in paths], list(DEMO_CLASSES), out / "predictions", device=device)

    def summary(res: dict[str, Any]) -> dict[str, Any]:
        keys = ("mIoU", "pAcc", "mAcc", "fwIoU", "ms_per_image", "per_class_IoU", "cer_topk", "cer_kept_mean")
        return {k: res.get(k) for k in keys if k in res}

    total_s = time.perf_counter() - start
    metrics = {
        "command": "sed-demo",
        "preset": cfg.preset,
        "random_clip_weights": True,
        "note": HONESTY,
        "iterations": iters,
        "batch_size": batch_size,
        "num_train": num_train,
        "num_val": num_val,
        "device": str(device),
        "train_seconds": train_s,
        "total_seconds": total_s,
        "final_loss": result.losses.get("loss"),
        "untrained": summary(baseline),
        "plain": summary(plain),
        "cer": summary(cer),
        "learning_curve": curve,
        "files": {
            "eval": str(out / "eval"),
            "predictions": str(out / "predictions"),
            "ground_truth": str(out / "ground_truth"),
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "train_log": str(out / "train" / "metrics.jsonl"),
        },
    }
    write_json(out / "metrics.json", metrics)

    say("")
    say("=" * 100)
    say(f"sed-demo finished in {total_s:.0f} s (training {train_s:.0f} s, {iters} iterations)")
    say(f"  validation mIoU on {num_val} demo scenes ({len(DEMO_CLASSES)} classes, chance level is the untrained row):")
    say(f"    untrained model             mIoU {fmt(baseline['mIoU']):>5}   pixel acc {fmt(baseline['pAcc']):>5}")
    say(f"    trained, plain decoder      mIoU {fmt(plain['mIoU']):>5}   pixel acc {fmt(plain['pAcc']):>5}   "
        f"{fmt(plain['ms_per_image'], 0)} ms/image")
    kept = cer.get("cer_kept_mean") or [float("nan")] * 3
    say(f"    trained, CER top-{cfg.topk:<3}        mIoU {fmt(cer['mIoU']):>5}   pixel acc {fmt(cer['pAcc']):>5}   "
        f"{fmt(cer['ms_per_image'], 0)} ms/image (classes kept per layer {'/'.join(fmt(v) for v in kept)} of "
        f"{len(DEMO_CLASSES)})")
    if cer["mIoU"] < plain["mIoU"] - 1.0:
        cells = size // 32
        say(f"    (CER rejects classes with the decoder's early auxiliary heads; here they see a {cells}x{cells} cost "
            "map built from")
        say("     random CLIP features and carry little class information, so classes that are present get rejected.")
        say("     With pretrained CLIP at 768 px (24x24 map) the paper's SED-fast, k=8, changes mIoU by at most 0.4.)")
    say(f"  metrics:             {(out / 'metrics.json').resolve()}")
    say(f"  full eval results:   {(out / 'eval').resolve()}")
    say(f"  prediction overlays: {(out / 'predictions').resolve()}  (*_overlay.png, *_labels.png)")
    say(f"  ground truth:        {(out / 'ground_truth').resolve()}")
    say(f"  checkpoint:          {result.checkpoint}")
    say(f"  try it:              uv run sed-predict {out / 'samples'} --checkpoint {result.checkpoint} "
        f"--vocabulary \"{','.join(DEMO_CLASSES)}\" --output-dir {out / 'my_predictions'}")
    say(f"  {HONESTY}")
    say("=" * 100)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-demo``."""
    setup_logging()
    return run_command("sed-demo", lambda: run(tyro.cli(DemoConfig, args=argv, prog="sed-demo")))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
