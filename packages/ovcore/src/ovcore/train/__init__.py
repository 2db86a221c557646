"""Shared training engine: configs, AdamW parameter groups, schedules, torch.distributed, checkpoints, the loop, CLIs.

Typical entry point of a method::

    from ovcore.train import TrainConfig, preset_cli, train

    @dataclass
    class MyTrainConfig(TrainConfig):
        width: int = 64
        \"\"\"Decoder width.\"\"\"

    PRESETS = {"small": ("demo size", MyTrainConfig(max_iters=200, batch_size=4))}

    def run(cfg: MyTrainConfig) -> None:
        cfg.validate()  # numeric options first, named by their flags
        train(cfg, model=lambda: build_model(cfg), dataset=build_train_set(cfg),
              evaluate_fn=lambda model, it: evaluate(model.predict, val_set, num_classes=...))

    def main() -> int:  # errors: one line "my-train: error: ..." and exit 2 (ovcore.command)
        return run_command("my-train", lambda: run(preset_cli(PRESETS, prog="my-train")))
"""

from .checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpointer,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
)
from .cli import preset_cli
from .config import OptimConfig, ScheduleConfig, TrainConfig, config_to_dict
from .data import ResumableLoader, SeededSamples, sample_seed
from .distributed import (
    DistInfo,
    ResumableDistributedSampler,
    all_gather_object,
    all_reduce_mean,
    barrier,
    cleanup,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    resolve_device,
    unwrap,
    wrap_ddp,
)
from .engine import EvaluateFn, StepCallback, TrainResult, seed_all, train
from .optim import (
    NORM_TYPES,
    build_optimizer,
    build_param_groups,
    lr_multiplier,
    named_trainable_parameters,
    weight_decay_of,
)
from .recipe import dataset_transform, describe_transform, effective_recipe, format_recipe
from .schedule import LrFactor, build_scheduler, lr_factor

__all__ = [
    "CHECKPOINT_FORMAT",
    "NORM_TYPES",
    "named_trainable_parameters",
    "Checkpointer",
    "DistInfo",
    "EvaluateFn",
    "LrFactor",
    "OptimConfig",
    "ResumableDistributedSampler",
    "ResumableLoader",
    "ScheduleConfig",
    "SeededSamples",
    "StepCallback",
    "TrainConfig",
    "TrainResult",
    "all_gather_object",
    "all_reduce_mean",
    "atomic_save",
    "barrier",
    "build_optimizer",
    "build_param_groups",
    "build_scheduler",
    "capture_rng_state",
    "cleanup",
    "dataset_transform",
    "describe_transform",
    "effective_recipe",
    "format_recipe",
    "config_to_dict",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "load_model_weights",
    "lr_factor",
    "lr_multiplier",
    "preset_cli",
    "resolve_device",
    "restore_rng_state",
    "sample_seed",
    "seed_all",
    "train",
    "unwrap",
    "weight_decay_of",
    "wrap_ddp",
]
