"""``clipzss-train``: train CLIP-ZSS with the inductive zero-shot protocol of the paper (Sec. 3.1, 4.1-4.2).

Experiments are the paper's training runs (configs as data); every flag overrides one field. The flags mean what
they mean in every command of the workspace: ``--preset`` is the model preset, ``--recipe`` the training recipe
(optimiser and schedule), ``--data-root`` the dataset root, ``--output-dir`` the run folder::

    clipzss-train --experiment voc_zs --data-root /data --teacher-pretrained /ckpt/ViT-B-16.pt \\
        --student-pretrained /ckpt/swin_base_patch4_window7_224.safetensors
    clipzss-train --experiment coco_stuff_zs --preset clipzss_convnext_b_upernet --max-iters 40000
    torchrun --nproc_per_node 8 -m clipzss.cli.train --experiment cross_coco_stuff --data-root /data
    clipzss-train --experiment demo --data-root datasets      # CPU, random weights, after `ovcore demo-data`

The spellings of the previous release (``--preset <experiment>``, ``--model-preset``, ``--data.root``) still work
for one release and print a deprecation line.

The run directory holds the engine's training checkpoints (``checkpoints/ckpt_*.pt``, ``--resume`` continues from
the latest) and, next to them, ``checkpoints/clipzss_inference.pt``: the student and the text embeddings only
(``CLIPZSS.export_inference_state_dict``), which ``clipzss-eval`` reads without building the CLIP image tower. It is
refreshed at every training checkpoint and written at the end.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tyro

from ovcore.cmd.errors import UsageError, run_command
from ovcore.cmd.log import setup_logging
from ovcore.train.config import OptimConfig, ScheduleConfig, TrainConfig

from .._registry import get_preset_config, list_presets
from ..config import CLIPZSSConfig, replace
from ..presets import DEMO_SEEN
from ._common import INFERENCE_NAME, build_zero_shot, test_transform

__all__ = [
    "ClipZSSTrainConfig",
    "DataConfig",
    "INFERENCE_NAME",
    "DEPRECATED_FLAGS",
    "EXPERIMENTS",
    "RECIPES",
    "TrainRecipe",
    "apply_recipe",
    "build_config",
    "main",
    "run",
]

logger = logging.getLogger(__name__)

PROG = "clipzss-train"

PAPER_MODEL = "clipzss_swin_b_upernet"
"""Default student of the paper-scale recipes: the paper's Swin-B row (the other two backbones are not in timm)."""

DEMO_MODEL = "clipzss_tiny_convnext_segformer"

RANDOM_TEACHER_NOTE = (
    "the CLIP teacher has random weights (--teacher-pretrained none / the tiny demo presets): the student learns "
    "the seen classes, but nothing transfers to the unseen ones; use it for smoke tests, not for results"
)

TrainBenchmark = Literal["voc_zs", "coco_stuff_zs", "context_zs", "demo_zs"]
"""Benchmarks ``clipzss-train`` trains on (``ovcore.benchmarks``' zero-shot ones: unseen classes ignored)."""

Experiment = Literal["voc_zs", "coco_stuff_zs", "context_zs", "cross_coco_stuff", "demo"]
"""``--experiment`` choices: the names of :data:`EXPERIMENTS`."""

DEPRECATED_FLAGS = {"--model-preset": "--preset", "--data.root": "--data-root"}
"""Old spelling -> new flag (accepted for one release, with a warning); ``--preset <experiment>`` is rewritten to
``--experiment <experiment>`` the same way."""

# A run-time Literal of the registered model presets, so --help lists them and a typo is rejected by the parser.
ModelPreset = Literal.__getitem__(tuple(list_presets()))  # type: ignore[misc]


@dataclass(frozen=True)
class TrainRecipe:
    """Optimiser, schedule and learning-rate multipliers of one ``--recipe``."""

    description: str
    optim: OptimConfig
    schedule: ScheduleConfig
    lr_mults: tuple[float, float] | None = None
    """(backbone, head) multipliers; None keeps the model preset's (mmseg's per-architecture recipe)."""


RECIPES: dict[str, TrainRecipe] = {
    # mmseg's swin-base UPerNet config: AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 (none on norm layers,
    # absolute_pos_embed, relative_position_bias_table: OptimConfig rules from CLIPZSS.default_optim), LinearLR from
    # 1e-6 over 1500 iterations, then PolyLR power 1.0 to 0.
    "mmseg": TrainRecipe(
        "mmseg Swin-B UPerNet: AdamW 6e-5, wd 0.01, warm-up 1500 + poly 1.0",
        OptimConfig(lr=6e-5, weight_decay=0.01, betas=(0.9, 0.999)),
        ScheduleConfig(name="poly", warmup_iters=1500, warmup_ratio=1e-6, power=1.0, min_lr=0.0),
    ),
    # ZegCLIP's zero-shot configs (vpt_seg_zero_*): AdamW lr 2e-5, weight decay 0.01, custom_keys backbone and head
    # lr_mult 10, norm / ln decay_mult 0; poly power 0.9, min_lr 1e-6 (mmcv: the same floor for every group), linear
    # warm-up 1500 from 1e-6.
    "zegclip": TrainRecipe(
        "ZegCLIP configs: AdamW 2e-5 x10 (backbone and head), wd 0.01, warm-up 1500 + poly 0.9 to 1e-6",
        OptimConfig(lr=2e-5, weight_decay=0.01, betas=(0.9, 0.999)),
        ScheduleConfig(
            name="poly", warmup_iters=1500, warmup_ratio=1e-6, power=0.9, min_lr=1e-6, min_lr_mode="absolute"
        ),
        lr_mults=(10.0, 10.0),
    ),
    # A few CPU minutes on the demo scenes with the tiny random presets: a larger rate and a short warm-up so the
    # student visibly learns the seen classes; the numbers say nothing about the paper (random CLIP weights).
    "demo": TrainRecipe(
        "CPU demo: AdamW 1e-3, wd 0.01, warm-up 20 + poly 1.0",
        OptimConfig(lr=1e-3, weight_decay=0.01),
        ScheduleConfig(name="poly", warmup_iters=20, warmup_ratio=1e-3, power=1.0),
    ),
}
"""``--recipe`` choices (configs as data): the README's recipe table says where each value comes from."""

Recipe = Literal.__getitem__(tuple(RECIPES))  # type: ignore[misc]


@dataclass
class DataConfig:
    """Training and validation data: an ovcore.data layout under one root, ZegCLIP's mmseg pipeline."""

    scale: tuple[int, int] | None = None
    """(long, short) base scale of the random rescale; default (4 x crop, crop), i.e. ZegCLIP's (2048, 512) at
    the 512 crop."""

    ratio_range: tuple[float, float] = (0.5, 2.0)
    """Range of the random rescale ratio."""

    cat_max_ratio: float = 0.75
    """Random crop: no class may cover more than this fraction of the crop (mmseg; 1.0 disables)."""

    flip_prob: float = 0.5
    """Horizontal flip probability."""

    photometric: bool = True
    """mmseg's photometric distortion."""

    test_short_side: int | None = None
    """Validation resize: short side (long side by aspect ratio, no cap, as ZegCLIP's min_size); default the crop
    size; 0 keeps the original resolution."""

    val_max_images: int | None = None
    """Score only the first N validation images in the periodic evaluations (quick checks); None: the whole split."""

    eval_batch_size: int = 1
    """Images per forward pass in the evaluations (consecutive images of the same size only)."""

    eval_num_workers: int = 2
    """DataLoader workers of the evaluations."""


@dataclass
class ClipZSSTrainConfig(TrainConfig):
    """Train CLIP-ZSS (inductive zero-shot segmentation with a frozen CLIP teacher) with the shared ovcore engine."""

    experiment: Experiment = "voc_zs"  # type: ignore[valid-type]
    """The paper's training run to start from (benchmark, iterations, batch, intervals): voc_zs (Table 1, 20k),
    coco_stuff_zs (Table 1, 80k), context_zs (Table 1, 40k), cross_coco_stuff (Table 7: COCO-Stuff 156 seen classes,
    60k, batch 32), demo (CPU, tiny random model on the demo scenes). Its values are the defaults of the other
    flags."""

    data_root: str | None = None
    """Dataset root holding the prepared layouts (written by `ovcore prepare ...`, or `ovcore demo-data` for the
    demo); default $DETECTRON2_DATASETS or ./datasets."""

    benchmark: TrainBenchmark = "voc_zs"
    """Training set and seen/unseen split: voc_zs (15/5), coco_stuff_zs (156/15; also the cross-dataset training
    set), context_zs (49/10), demo_zs (demo scenes, 6/2). Unseen pixels become ignore in training; the periodic
    evaluations score its val split over all classes. Changing it re-applies the dataset's templates and gamma."""

    recipe: Recipe = "mmseg"  # type: ignore[valid-type]
    """Optimiser and schedule (the paper: "AdamW with the default training schedule in MMSeg", Sec. 4.2): 'mmseg'
    = mmseg's Swin-B UPerNet recipe (AdamW 6e-5, weight decay 0.01, warm-up 1500 + poly 1.0 to 0); 'zegclip' =
    ZegCLIP's zero-shot configs (AdamW 2e-5 with backbone and head x10, poly 0.9 to min_lr 1e-6); 'demo' = the CPU
    demo's. It sets the --optim.*, --schedule.* and --model.*-lr-mult defaults (the README's recipe table)."""

    preset: ModelPreset = PAPER_MODEL  # type: ignore[valid-type]
    """CLIP-ZSS model preset (clipzss.list_presets()); the --model.* defaults below are this preset's, for this
    benchmark."""

    teacher_pretrained: str | None = None
    """Shortcut for --model.teacher.pretrained: the CLIP teacher's open_clip tag ('openai' for ViT-B-16) or a local
    weights file; 'none' = random init (smoke tests only). Offline, a tag must already be in the local cache."""

    student_pretrained: str | None = None
    """Shortcut for --model.student.pretrained: a timm pretrained tag of the student backbone (e.g. ms_in1k,
    ms_in22k, fb_in1k), a local weights file (.safetensors / .pth / .bin), or 'none' for random init. Offline, a tag
    must already be in the Hugging Face cache."""

    model: CLIPZSSConfig = field(default_factory=CLIPZSSConfig)
    """The CLIP-ZSS model (student, teacher, GLM, PLM, synthesizer, losses)."""

    data: DataConfig = field(default_factory=DataConfig)
    """Data."""

    def validate(self) -> None:
        """The engine's numeric checks, the model's and the data options'; the messages name the flags."""
        from ovcore.cmd.errors import check_min, check_positive, check_range

        super().validate()
        self.model.validate("--model.")
        data = self.data
        for option, value, minimum in (
            ("--data.val-max-images", data.val_max_images, 1),
            ("--data.eval-batch-size", data.eval_batch_size, 1),
            ("--data.eval-num-workers", data.eval_num_workers, 0),
            ("--data.test-short-side", data.test_short_side, 0),
        ):
            check_min(option, value, minimum)
        for side in data.scale or ():
            check_min("--data.scale", side, 1)
        for ratio in data.ratio_range:
            check_positive("--data.ratio-range", ratio)
        check_range("--data.cat-max-ratio", data.cat_max_ratio, 0.0, 1.0, open_low=True)
        check_range("--data.flip-prob", data.flip_prob, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------- presets


def apply_recipe(cfg: ClipZSSTrainConfig, name: str) -> ClipZSSTrainConfig:
    """Set the optimiser, schedule and (for 'zegclip') the model's lr multipliers of a recipe, in place.

    Raises:
        ValueError: unknown recipe name.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown --recipe {name!r}; available: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    cfg.recipe = name  # type: ignore[assignment]
    cfg.optim, cfg.schedule = copy.deepcopy(recipe.optim), copy.deepcopy(recipe.schedule)
    if recipe.lr_mults is not None:
        cfg.model = replace(cfg.model, backbone_lr_mult=recipe.lr_mults[0], head_lr_mult=recipe.lr_mults[1])
    return cfg


def _paper(benchmark: str, max_iters: int, batch_size: int, interval: int, name: str) -> ClipZSSTrainConfig:
    # Sec. 4.2: 512 crops, batch 16 (8 GPUs x 2), 20k / 40k / 80k iterations; optimiser and schedule: --recipe
    # (default mmseg). Checkpoint / evaluation intervals: mmseg's schedules (2k for 20k, 4k for 40k, 8k for 80k).
    return ClipZSSTrainConfig(
        output_dir=f"runs/clipzss/{name}",
        max_iters=max_iters,
        batch_size=batch_size,
        recipe="mmseg",
        checkpoint_every=interval,
        eval_every=interval,
        keep_last=3,
        log_every=50,
        num_workers=4,
        experiment=name,
        benchmark=benchmark,  # type: ignore[arg-type]
        preset=PAPER_MODEL,
    )


def _demo() -> ClipZSSTrainConfig:
    return ClipZSSTrainConfig(
        output_dir="runs/clipzss/demo",
        max_iters=200,
        batch_size=4,
        recipe="demo",
        checkpoint_every=50,
        eval_every=100,
        keep_last=2,
        log_every=10,
        num_workers=0,
        experiment="demo",
        benchmark="demo_zs",
        preset=DEMO_MODEL,
        data=DataConfig(eval_num_workers=0),
    )


EXPERIMENTS: dict[str, tuple[str, Callable[[], ClipZSSTrainConfig]]] = {
    "voc_zs": (
        "PASCAL VOC 15/5 (Table 1): 20k iterations, batch 16, 512 crop, AdamW 6e-5, warm-up 1500 + poly",
        lambda: _paper("voc_zs", 20_000, 16, 2_000, "voc_zs"),
    ),
    "coco_stuff_zs": (
        "COCO-Stuff 156/15 (Table 1): 80k iterations, batch 16, 512 crop, AdamW 6e-5, warm-up 1500 + poly",
        lambda: _paper("coco_stuff_zs", 80_000, 16, 8_000, "coco_stuff_zs"),
    ),
    "context_zs": (
        "PASCAL Context 49/10 (Table 1): 40k iterations, batch 16, 512 crop, AdamW 6e-5, warm-up 1500 + poly",
        lambda: _paper("context_zs", 40_000, 16, 4_000, "context_zs"),
    ),
    "cross_coco_stuff": (
        "cross-dataset (Table 7): the 156 seen COCO-Stuff classes, 60k iterations, batch 32; then clipzss-eval "
        "--benchmarks cross-dataset",
        lambda: _paper("coco_stuff_zs", 60_000, 32, 6_000, "cross_coco_stuff"),
    ),
    "demo": (
        "CPU demo: tiny random model on the demo scenes (demo_zs, 6 seen / 2 unseen), 200 iterations, batch 4",
        _demo,
    ),
}
"""The paper's training runs (``--experiment``): name -> (description, factory)."""
assert tuple(EXPERIMENTS) == typing.get_args(Experiment)


def model_config(model_preset: str, benchmark: str) -> CLIPZSSConfig:
    """The model preset's config with the benchmark's vocabulary, templates and gamma (``DATASET_DEFAULTS``).

    Raises:
        ValueError: unknown model preset or benchmark.
    """
    from ovcore.benchmarks import get_benchmark

    bench = get_benchmark(benchmark, "--benchmark")
    if not bench.zero_shot:
        raise ValueError(f"--benchmark {benchmark!r} has no seen/unseen split to train on")
    if bench.name == "demo_zs":
        split = bench.split()
        return get_preset_config(model_preset, class_names=list(split.class_names), seen_classes=list(DEMO_SEEN))
    return get_preset_config(model_preset, dataset=bench.dataset)


def build_config(
    experiment: str, *, preset: str | None = None, benchmark: str | None = None, recipe: str | None = None
) -> ClipZSSTrainConfig:
    """An experiment with its model config and its optimiser recipe filled in.

    Args:
        experiment: A name of :data:`EXPERIMENTS`.
        preset: Replaces the experiment's model preset.
        benchmark: Replaces the experiment's benchmark.
        recipe: Replaces the experiment's optimiser recipe (a name of :data:`RECIPES`).

    Raises:
        ValueError: unknown names.
    """
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown --experiment {experiment!r}; available: {', '.join(EXPERIMENTS)}")
    cfg = EXPERIMENTS[experiment][1]()
    cfg.preset = preset or cfg.preset
    cfg.benchmark = benchmark or cfg.benchmark  # type: ignore[assignment]
    cfg.model = model_config(cfg.preset, cfg.benchmark)
    return apply_recipe(cfg, recipe or cfg.recipe)


@dataclass
class _Stage0:
    # Only what changes the defaults of other flags: read first, then the full parser shows those defaults.
    experiment: Experiment = "voc_zs"  # type: ignore[valid-type]
    preset: ModelPreset | None = None  # type: ignore[valid-type]
    benchmark: TrainBenchmark | None = None
    recipe: Recipe | None = None  # type: ignore[valid-type]


def _rewrite_old_flags(args: Sequence[str]) -> list[str]:
    """The previous release's spellings -> today's, one deprecation line each (README "Command line")."""
    from ovcore.cmd.log import warn
    from ovcore.cmd.options import rename_flags

    out = list(args)
    for i, arg in enumerate(out):  # --preset <experiment name>: the flag meant the experiment before
        flag, eq, value = arg.partition("=")
        value = value if eq else (out[i + 1] if i + 1 < len(out) else "")
        if flag == "--preset" and value in EXPERIMENTS and value not in list_presets():
            warn(PROG, f"--preset {value} names an experiment: use --experiment {value} (--preset is now the model "
                       "preset, as in every command); the old meaning goes in the next release")
            out[i] = f"--experiment={value}" if eq else "--experiment"
    return rename_flags(out, DEPRECATED_FLAGS, PROG)


def parse_args(args: Sequence[str] | None = None) -> ClipZSSTrainConfig:
    """Command line -> config (``--experiment`` + ``--preset`` + ``--benchmark`` + ``--recipe`` pick the defaults)."""
    args = _rewrite_old_flags(sys.argv[1:] if args is None else args)
    stage0, _ = tyro.cli(_Stage0, args=args, prog=PROG, add_help=False, return_unknown_args=True)
    base = build_config(stage0.experiment, preset=stage0.preset, benchmark=stage0.benchmark, recipe=stage0.recipe)
    return tyro.cli(ClipZSSTrainConfig, args=args, default=base, prog=PROG, description=_description())


def _description() -> str:
    return (
        "Train CLIP-ZSS (inductive zero-shot segmentation, a frozen CLIP teacher) with the ovcore engine. "
        "Multi-GPU: torchrun --nproc_per_node N -m clipzss.cli.train ... (--batch-size is the global batch). "
        "The run writes checkpoints/ckpt_*.pt (--resume continues) and checkpoints/clipzss_inference.pt "
        "(student + text embeddings) for clipzss-eval and clipzss-predict. Experiments: "
        + "; ".join(f"{name}: {text}" for name, (text, _) in EXPERIMENTS.items())
    )


# ---------------------------------------------------------------------------------------------------------- running


def _is_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors", ".npz"))


def _resolve_weights(cfg: ClipZSSTrainConfig) -> CLIPZSSConfig:
    """Apply the --teacher-pretrained / --student-pretrained shortcuts and check local weight files exist."""
    model = cfg.model
    if cfg.teacher_pretrained is not None:
        value = cfg.teacher_pretrained
        model = replace(model, teacher__pretrained=None if value.lower() == "none" else value)
    if cfg.student_pretrained is not None:
        value = cfg.student_pretrained
        lowered = value.lower()
        student_value: bool | str = False if lowered in ("none", "false") else True if lowered == "true" else value
        model = replace(model, student__pretrained=student_value)
    teacher_w, student_w = model.teacher.pretrained, model.student.pretrained
    if isinstance(teacher_w, str) and _is_path(teacher_w) and not Path(teacher_w).is_file():
        raise UsageError(f"--teacher-pretrained (--model.teacher.pretrained) {teacher_w}: no such file")
    if isinstance(student_w, str) and _is_path(student_w) and not Path(student_w).is_file():
        raise UsageError(f"--student-pretrained (--model.student.pretrained) {student_w}: no such file")
    return model


def _check_vocabulary(cfg: ClipZSSTrainConfig) -> None:
    """The model's vocabulary (--model.dataset / class-names / seen-classes) must be the benchmark's."""
    from ovcore.benchmarks import get_benchmark

    from ..model import resolve_vocabulary

    split = get_benchmark(cfg.benchmark).split()
    names, seen = resolve_vocabulary(cfg.model)
    if names != list(split.class_names) or sorted(seen) != sorted(split.seen):
        raise UsageError(
            f"the model's vocabulary ({len(names)} classes, {len(seen)} seen; --model.dataset "
            f"{cfg.model.dataset!r}) is not that of --benchmark {cfg.benchmark} ({len(split.class_names)} classes, "
            f"{len(split.seen)} seen): switch datasets with --benchmark, which sets the --model.* defaults"
        )


def _train_transform(cfg: ClipZSSTrainConfig) -> Any:
    from ovcore.data import MMSegTrainTransform

    crop = cfg.model.crop_size
    scale = cfg.data.scale or (4 * crop, crop)
    return MMSegTrainTransform(
        scale=tuple(scale),  # type: ignore[arg-type]
        ratio_range=tuple(cfg.data.ratio_range),  # type: ignore[arg-type]
        crop_size=(crop, crop),
        cat_max_ratio=cfg.data.cat_max_ratio,
        flip_prob=cfg.data.flip_prob,
        photometric=cfg.data.photometric,
    )


def _build_model(model_cfg: CLIPZSSConfig) -> Any:
    from .._registry import create_clipzss

    try:
        return create_clipzss(model_cfg)
    except RuntimeError as err:
        if "pretrained" not in str(err) and "weights" not in str(err):
            raise
        # Missing CLIP / timm weights offline: the user fixes it with a flag, so no traceback.
        raise UsageError(
            f"{err}\n(give local files with --teacher-pretrained PATH / --student-pretrained PATH, or 'none' for "
            "random weights)"
        ) from err


def _export(model: Any, path: Path, benchmark: str) -> Path:
    from ovcore.train import atomic_save

    payload = model.export_inference_state_dict()
    # An extra key (ZeroShotSegmenter ignores it): clipzss-eval's default benchmark.
    payload["benchmark"] = benchmark
    return atomic_save(payload, path)


def _evaluate_fn(cfg: ClipZSSTrainConfig, val_set: Any) -> Callable[[Any, int], dict[str, Any]]:
    from ovcore.benchmarks import get_benchmark
    from ovcore.data import dataset_info, get_class_names
    from ovcore.evaluate import evaluate
    from ovcore.files import json_safe

    bench = get_benchmark(cfg.benchmark)
    split = bench.split()
    names = get_class_names(bench.dataset)

    def run_eval(model: Any, iteration: int) -> dict[str, Any]:
        import torch.distributed as dist

        device = model.student_mean.device
        results = evaluate(
            model.predict,
            val_set,
            num_classes=len(names),
            class_names=names,
            batch_size=cfg.data.eval_batch_size,
            device=device,
            seen_classes=split.seen,
            unseen_classes=split.unseen,
            progress=cfg.progress,
            num_workers=cfg.data.eval_num_workers,
            distributed=cfg.eval_all_ranks and dist.is_available() and dist.is_initialized(),
            ignore_index=dataset_info(bench.dataset).ignore_index,
            iou_convention="mmseg",
        )
        summary = {k: results.get(k) for k in ("pAcc", "mIoU_seen", "mIoU_unseen", "hIoU", "mIoU", "images_per_s")}
        logger.info("iteration %d, %s val: %s", iteration, bench.name, json_safe(summary))
        return json_safe({"benchmark": bench.name, **results})

    return run_eval


def _visualize_fn(cfg: ClipZSSTrainConfig, val_set: Any) -> Callable[[Any, int], list[Any]]:
    """Four validation overlays (prediction above ground truth) for TensorBoard after each evaluation."""
    from ovcore.benchmarks import get_benchmark
    from ovcore.data import dataset_info, get_class_names
    from ovcore.train.tensorboard import validation_overlays

    bench = get_benchmark(cfg.benchmark)
    return validation_overlays(val_set, get_class_names(bench.dataset),
                               ignore_index=dataset_info(bench.dataset).ignore_index)


def _method_recipe(cfg: ClipZSSTrainConfig, train_transform: Any, val_transform: Any) -> dict[str, Any]:
    """CLIP-ZSS's sections of the effective recipe (the engine adds optimizer, schedule and batch)."""
    from ovcore.train import describe_transform

    from ..segmenter import slide_stride

    model = cfg.model
    return {
        "method": {
            "name": "clipzss",
            "recipe": cfg.recipe,
            "benchmark": cfg.benchmark,
            "experiment": cfg.experiment,
            "model_preset": cfg.preset,
            "backbone": model.student.backbone,
            "head": model.student.head,
            "backbone_lr_mult": model.backbone_lr_mult,
            "head_lr_mult": model.head_lr_mult,
            "no_decay_names": list(model.no_decay_names),
            "teacher": f"{model.teacher.model_name} ({model.teacher.pretrained})",
            "teacher_normalization": model.teacher.normalization,
        },
        "augmentation": describe_transform(train_transform),
        "evaluation": {
            "resize": describe_transform(val_transform) if val_transform is not None else "original resolution",
            "test_mode": model.test_mode,
            "crop_size": model.crop_size,
            "slide_stride": slide_stride(model.crop_size) if model.test_mode == "slide" else None,
        },
    }


def run(cfg: ClipZSSTrainConfig) -> Any:
    """Train with a parsed config; returns the engine's :class:`ovcore.train.TrainResult`.

    Raises:
        UsageError: bad paths or names (a missing dataset root, missing weight files, offline weights).
    """
    from torch.utils.data import Subset

    from ovcore.cmd.errors import check_output_dir, require_file
    from ovcore.data import collate_samples
    from ovcore.train import is_main_process, train

    # Options and paths first: a typo is reported before the datasets, the teacher and the student are built.
    cfg.validate()
    from ovcore.benchmarks import get_benchmark
    from ovcore.cmd.options import check_data_root

    bench = get_benchmark(cfg.benchmark)
    root = check_data_root(cfg.data_root, "--data-root")
    check_output_dir(cfg.output_dir, "--output-dir")
    require_file(cfg.resume_from, "--resume-from")
    cfg = copy.deepcopy(cfg)
    cfg.model = _resolve_weights(cfg)
    _check_vocabulary(cfg)
    if cfg.model.teacher.pretrained is None:
        logger.warning(RANDOM_TEACHER_NOTE)
    try:
        compact = cfg.model.label_ids == "compact"
        transforms = (_train_transform(cfg), test_transform(cfg.model.crop_size, cfg.data.test_short_side))
        train_set = build_zero_shot(bench, root, "train", transforms[0], compact_seen=compact)
        val_set = build_zero_shot(bench, root, "val", transforms[1])
    except FileNotFoundError as err:
        raise UsageError(f"--data-root {root}: {err}") from err
    if cfg.data.val_max_images is not None and len(val_set) > cfg.data.val_max_images:
        val_set = Subset(val_set, range(cfg.data.val_max_images))

    out = Path(cfg.output_dir)
    inference_path = out / "checkpoints" / INFERENCE_NAME
    holder: list[Any] = []

    def factory() -> Any:
        holder.append(_build_model(cfg.model))
        return holder[0]

    def on_step(iteration: int, losses: Any) -> None:
        # Refresh the inference checkpoint with every training checkpoint (the final one is written after train()).
        if cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0 and iteration < cfg.max_iters:
            if is_main_process():
                _export(holder[0], inference_path, cfg.benchmark)

    result = train(
        cfg,
        factory,
        train_set,
        evaluate_fn=_evaluate_fn(cfg, val_set),
        visualize_fn=_visualize_fn(cfg, val_set),
        collate_fn=collate_samples,
        step_callback=on_step,
        recipe=_method_recipe(cfg, *transforms),
    )
    if result.is_main:  # one process writes the inference checkpoint
        _export(holder[0], inference_path, cfg.benchmark)
        final = result.eval_results.get(result.iteration)
        if final is not None:
            from ovcore.cmd.evaluate import RESULT_COLUMNS
            from ovcore.cmd.tables import format_table

            sys.stdout.write(format_table([final], RESULT_COLUMNS) + "\n")
        if cfg.model.teacher.pretrained is None:
            sys.stdout.write(f"note: {RANDOM_TEACHER_NOTE}\n")
        sys.stdout.write(
            f"training checkpoint: {result.checkpoint}\ninference checkpoint: {inference_path}\n"
            f"evaluate: clipzss-eval --checkpoint {inference_path} --data-root {root}\n"
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``clipzss-train``: 0, 2 after a reported error (one line), 130 after Ctrl-C."""
    setup_logging()
    return run_command(PROG, lambda: run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
