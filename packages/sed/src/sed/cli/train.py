"""``sed-train``: train SED with the shared engine (``ovcore.train``), single process or under ``torchrun``.

    sed-train                                            # the paper: sed_convnext_b_768 on COCO-Stuff 171, 80k it
    sed-train --preset sed_convnext_l_768 --output-dir runs/sed_l
    torchrun --nproc-per-node 4 -m sed.cli.train --preset sed_convnext_b_768   # 4 GPUs x 1 image (the paper's setup)
    sed-train --preset sed_convnext_b_768 --resume       # continue from the latest checkpoint in --output-dir
    sed-train --preset sed_tiny --max-iters 50           # small random-init preset on the built-in demo scenes

Presets with pretrained CLIP weights (the ConvNeXt ones) default to the paper's recipe (SED paper Sec. 4.2,
official ``configs/convnextB_768.yaml``): COCO-Stuff 171,
AdamW lr 2e-4, weight decay 1e-4 (0 for norm layers), CLIP learning-rate multiplier 0.01, cosine schedule without
warm-up over 80k iterations, global batch 4, 768x768 crops, full-model gradient clipping at 0.01, TF32 matmuls,
checkpoints every 5000 and evaluation every 10000 iterations. Random-init presets (sed_tiny*) default to a
CPU-sized recipe on the demo scenes. Every field can be overridden; ``--preset NAME --help`` shows that preset's values.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ovcore.cmd.errors import run_command
from ovcore.cmd.log import say, setup_logging
from ovcore.cmd.tables import cell
from ovcore.train.config import OptimConfig, ScheduleConfig, TrainConfig

__all__ = ["RECIPES", "SEDTrainConfig", "train_presets", "demo_recipe", "paper_recipe", "parse", "run", "main"]

RECIPES = ("paper", "demo")
"""``--recipe`` choices: the paper's recipe (COCO-Stuff 171, 80k iterations) or the CPU demo recipe."""


@dataclass
class SEDTrainConfig(TrainConfig):
    """Train SED with the shared engine. Presets with pretrained CLIP weights start from the paper's recipe
    (COCO-Stuff 171, AdamW 2e-4, weight decay 1e-4, CLIP multiplier 0.01, cosine, 80k iterations, batch 4, 768
    crops, gradient clipping 0.01); random-init presets (sed_tiny*) from a CPU recipe on the demo scenes. Every
    other flag overrides one field of the chosen preset (--preset NAME --help shows its values)."""

    model: str = "sed_convnext_b_768"
    """SED model preset to build (set by --preset; override it only to train one preset's recipe on another model)."""

    recipe: Literal["paper", "demo"] | None = None
    """Training recipe: 'paper' (COCO-Stuff 171, AdamW 2e-4, cosine, 80k iterations, batch 4, 768 crops) or 'demo'
    (a CPU recipe on the demo scenes); default: 'paper' for presets with pretrained CLIP weights, 'demo' for the
    random-init ones (sed_tiny*). Its values are the defaults of the other flags."""

    pretrained_clip: str | None = "laion_aesthetic_s13b_b82k"
    """CLIP weights to start from: an open_clip tag (read from the local hub cache), or a local file
    (.bin/.pt/.pth/.safetensors); None for random init. Default: the preset's tag."""

    init_checkpoint: str | None = None
    """Start from these SED weights (a sed-train checkpoint, a state dict, or an official .pth) instead of
    --pretrained-clip, with a fresh optimizer and schedule (use --resume to continue an interrupted run)."""

    clip_multiplier: float = 0.01
    """Learning-rate multiplier of the CLIP image tower (the paper's 0.01: 2e-6 at lr 2e-4)."""

    dataset: str = "coco_stuff_171"
    """Training dataset, an ovcore.data name (ovcore datasets lists them); 'demo' without prepared files uses the
    built-in in-memory scenes."""

    data_root: str | None = None
    """Dataset root (default: $DETECTRON2_DATASETS or ./datasets)."""

    train_split: str = "train"
    """Split used for training."""

    short_edge: int = 768
    """Training resize: short side (ResizeShortestEdge, before the crop)."""

    max_size: int = 2666
    """Training resize: maximum long side."""

    crop_size: int = 768
    """Random square crop (padded with ignore when the image is smaller)."""

    color_aug: bool = True
    """SSD colour augmentation (brightness, contrast, saturation, hue)."""

    flip_prob: float = 0.5
    """Horizontal flip probability."""

    eval_dataset: str | None = None
    """Dataset of the periodic evaluation: an ovcore.data name or a sed-eval short name (a150, pc59, ...); default
    the training dataset (the paper: COCO-Stuff val)."""

    eval_split: str = "val"
    """Split of the periodic evaluation."""

    eval_max_images: int | None = None
    """Evaluate on the first N images only (faster periodic checks); None uses the whole split."""

    eval_topk: int | None = None
    """Category early rejection k in the periodic evaluation; None evaluates the plain decoder."""

    eval_pooling: int = 1
    """Class-attention pooling in evaluation (eval.sh: 1; the official periodic evaluation kept training's 2)."""

    def validate(self) -> None:
        """The engine's numeric checks plus SED's own (sizes, probabilities, evaluation options)."""
        from ovcore.cmd.errors import check_min, check_range

        super().validate()
        for option, value, minimum in (
            ("--short-edge", self.short_edge, 1),
            ("--max-size", self.max_size, 1),
            ("--crop-size", self.crop_size, 1),
            ("--eval-max-images", self.eval_max_images, 1),
            ("--eval-topk", self.eval_topk, 0),
            ("--eval-pooling", self.eval_pooling, 1),
            ("--clip-multiplier", self.clip_multiplier, 0),
        ):
            check_min(option, value, minimum)
        check_range("--flip-prob", self.flip_prob, 0.0, 1.0)


def paper_recipe(preset: str) -> SEDTrainConfig:
    """The official configuration (``configs/convnextB_768.yaml``) for a preset with pretrained CLIP weights."""
    from sed._registry import get_preset_config

    mcfg = get_preset_config(preset)
    return SEDTrainConfig(
        output_dir=f"runs/{preset}",
        model=preset,
        recipe="paper",
        pretrained_clip=mcfg.clip_pretrained,
        clip_multiplier=mcfg.clip_lr_multiplier,
        max_iters=80_000,
        batch_size=4,
        optim=OptimConfig(lr=2e-4, weight_decay=1e-4, weight_decay_norm=0.0),
        schedule=ScheduleConfig(name="cosine", warmup_iters=0, min_lr=0.0),
        clip_grad_norm=0.01,
        float32_matmul_precision="high",
        cudnn_benchmark=True,
        num_workers=4,
        checkpoint_every=5000,
        eval_every=10_000,
        log_every=20,
        short_edge=mcfg.input_size,
        crop_size=mcfg.input_size,
    )


def demo_recipe(preset: str = "sed_tiny") -> SEDTrainConfig:
    """A CPU-sized recipe for the random-init presets on the built-in demo scenes (what ``sed-demo`` runs).

    It keeps the paper's optimiser, schedule and clipping, but with random CLIP weights the image tower has to learn
    too, so it gets the full learning rate (multiplier 1) and a higher base rate; scenes are used at the network's
    input size and without colour augmentation, because the demo classes are defined by colour.
    """
    from sed._registry import get_preset_config

    mcfg = get_preset_config(preset)
    size = mcfg.input_size
    return SEDTrainConfig(
        output_dir=f"runs/{preset}",
        model=preset,
        recipe="demo",
        pretrained_clip=mcfg.clip_pretrained,
        clip_multiplier=1.0,
        dataset="demo",
        max_iters=800,
        batch_size=8,
        optim=OptimConfig(lr=2e-3, weight_decay=1e-4, weight_decay_norm=0.0),
        schedule=ScheduleConfig(name="cosine", warmup_iters=0, min_lr=0.0),
        clip_grad_norm=0.01,
        num_workers=0,
        checkpoint_every=200,
        eval_every=200,
        log_every=10,
        short_edge=size,
        max_size=4 * size,
        crop_size=size,
        color_aug=False,
    )


def train_presets(recipe: str | None = None) -> dict[str, tuple[str, SEDTrainConfig]]:
    """``--preset`` choices: one per registered SED preset (configs as data, built from ``model_configs``), each
    with ``recipe`` ('paper' or 'demo'; default: 'paper' for pretrained-CLIP presets, 'demo' for the others)."""
    import sed
    from sed._registry import get_preset_config

    if recipe is not None and recipe not in RECIPES:
        raise ValueError(f"--recipe: unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    presets: dict[str, tuple[str, SEDTrainConfig]] = {}
    for name in sed.list_presets():
        chosen = recipe or ("paper" if get_preset_config(name).clip_pretrained is not None else "demo")
        if chosen == "paper":
            presets[name] = ("paper recipe", paper_recipe(name))
        else:
            presets[name] = ("CPU demo recipe", demo_recipe(name))
    return presets


def build_training(cfg: SEDTrainConfig) -> tuple[Any, Any, Any, Any]:
    """The model factory, the training set and the evaluation functions of a config (checked before training).

    Returns:
        ``(model_factory, train_dataset, evaluate_fn or None, visualize_fn or None)``: ``visualize_fn`` draws four
        validation overlays for TensorBoard after each evaluation (``ovcore.train.tensorboard``).

    Raises:
        ValueError / FileNotFoundError: unknown preset or dataset, missing files.
    """
    import sed
    from ovcore.cmd.errors import require_file
    from ovcore.cmd.evaluate import first_images
    from ovcore.cmd.log import quiet_logger
    from ovcore.data import SEDTrainTransform, dataset_info, get_class_names
    from sed.cli._common import build_split, eval_target, eval_transform, evaluate_model, read_weights

    if not sed.is_preset(cfg.model):
        raise ValueError(f"--model: unknown SED preset {cfg.model!r}; available: {', '.join(sed.list_presets())}")
    try:
        info = dataset_info(cfg.dataset)
    except ValueError as err:
        raise ValueError(f"--dataset: {err}") from None
    init_path = require_file(cfg.init_checkpoint, "--init-checkpoint")
    # Read now, so a damaged file is reported before anything is built.
    init = read_weights(init_path, "--init-checkpoint") if init_path is not None else None
    if cfg.pretrained_clip is not None and Path(cfg.pretrained_clip).suffix in (".bin", ".pt", ".pth", ".safetensors"):
        require_file(cfg.pretrained_clip, "--pretrained-clip")
    train_names = get_class_names(cfg.dataset)
    transform = SEDTrainTransform(
        cfg.short_edge, cfg.max_size, cfg.crop_size, color_aug=cfg.color_aug, flip_prob=cfg.flip_prob,
        ignore_index=info.ignore_index,
    )
    fallback = cfg.data_root is None  # a root the user named must hold the data
    train_set = build_split(cfg.dataset, cfg.data_root, cfg.train_split, transform, memory_fallback=fallback)

    def make_model() -> Any:
        model = sed.create_sed(
            cfg.model,
            pretrained_clip=cfg.pretrained_clip,
            checkpoint=init,
            class_names=train_names,
            ignore_index=info.ignore_index,  # labels keep the dataset's ignore value (65535 for A-847, 459 PC-459)
            clip_lr_multiplier=cfg.clip_multiplier,
        )
        model.decoder.pooling_eval = cfg.eval_pooling
        return model

    evaluate_fn = visualize_fn = None
    if cfg.eval_every > 0 or cfg.eval_at_end:
        bench = eval_target(cfg.eval_dataset or cfg.dataset, "--eval-dataset")
        protocol = bench.protocol()
        eval_set = build_split(bench.dataset, cfg.data_root, cfg.eval_split,
                               eval_transform(sed.get_preset_config(cfg.model)), memory_fallback=fallback)
        eval_set = first_images(eval_set, cfg.eval_max_images, "--eval-max-images")

        def evaluate_fn(model: Any, iteration: int) -> dict[str, Any]:
            device = model.pixel_mean.device
            with quiet_logger("ovcore.evaluate"):  # the per-class table goes to output_dir/eval/iter_*.json
                results = evaluate_model(model, eval_set, protocol, topk=cfg.eval_topk, device=device, progress=False)
            say(f"[iter {iteration}] {bench.title} mIoU {results['mIoU']:.2f}  pAcc {results['pAcc']:.2f}  "
                f"({results['num_images']} images, {cell(results['ms_per_image'], 0)} ms/img)")
            return results

        from ovcore.train.tensorboard import validation_overlays

        visualize_fn = validation_overlays(eval_set, protocol.vocabulary, predict_options={"k": cfg.eval_topk},
                                           ignore_index=protocol.ignore_index)
    return make_model, train_set, evaluate_fn, visualize_fn


def _method_recipe(cfg: SEDTrainConfig, train_set: Any) -> dict[str, Any]:
    """SED's sections of the effective recipe (the engine adds optimizer, schedule and batch)."""
    from ovcore.train import dataset_transform, describe_transform

    transform = dataset_transform(train_set)
    method = {
        "name": "sed",
        "model": cfg.model,
        "pretrained_clip": cfg.pretrained_clip,
        "clip_multiplier": cfg.clip_multiplier,
        "dataset": cfg.dataset,
        "train_split": cfg.train_split,
    }
    return {"method": method, "augmentation": describe_transform(transform) if transform is not None else None}


def run(cfg: SEDTrainConfig) -> Any:
    """Body of ``sed-train``: check the inputs, train, and say where the results are."""
    from ovcore.cmd.errors import check_output_dir, require_file
    from ovcore.data import collate_samples
    from ovcore.train import train

    # Options and paths first: a typo is reported before the datasets and the model are built.
    cfg.validate()
    check_output_dir(cfg.output_dir, "--output-dir")
    require_file(cfg.resume_from, "--resume-from")
    make_model, train_set, evaluate_fn, visualize_fn = build_training(cfg)
    result = train(cfg, make_model, train_set, evaluate_fn=evaluate_fn, collate_fn=collate_samples,
                   recipe=_method_recipe(cfg, train_set), visualize_fn=visualize_fn)
    if result.is_main:
        out = Path(cfg.output_dir)
        say(f"sed-train: {result.iteration} iterations done; run folder {out.resolve()}")
        if result.checkpoint is not None:
            say(f"  last checkpoint: {result.checkpoint}")
            target = "--dataset demo" if cfg.dataset == "demo" else "--benchmarks all"
            say(f"  evaluate it:     sed-eval --checkpoint {result.checkpoint} {target}")
        if result.eval_results:
            last = max(result.eval_results)
            miou = result.eval_results[last]["mIoU"]
            say(f"  last evaluation (iteration {last}): mIoU {miou:.2f}; JSON in {out / 'eval'}")
    return result


def parse(argv: Sequence[str] | None = None) -> SEDTrainConfig:
    """Parse a command line into a :class:`SEDTrainConfig` (presets plus overrides)."""
    import sys

    import tyro

    from ovcore.train.cli import preset_cli

    args = list(sys.argv[1:] if argv is None else argv)
    # Stage 0 reads only --recipe, which chooses the defaults that the full parser then shows.
    chosen, _ = tyro.cli(_RecipeChoice, args=args, prog="sed-train", add_help=False, return_unknown_args=True)
    return preset_cli(train_presets(chosen.recipe), default="sed_convnext_b_768", args=args, prog="sed-train",
                      description=inspect.cleandoc(SEDTrainConfig.__doc__ or ""))


@dataclass
class _RecipeChoice:
    recipe: Literal["paper", "demo"] | None = None


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``sed-train``."""
    setup_logging()
    return run_command("sed-train", lambda: run(parse(argv)))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
