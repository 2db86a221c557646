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

    def main() -> int:  # errors: one line "my-train: error: ..." and exit 2 (ovcore.cmd.errors)
        return run_command("my-train", lambda: run(preset_cli(PRESETS, prog="my-train")))
"""

from ovcore.lazy import lazy_exports

# Names are imported on first use, so a command's --help that only needs the config dataclasses (ovcore.train.config)
# does not import torch.
_EXPORTS = {
    "CHECKPOINT_FORMAT": "ovcore.train.checkpoint",
    "Checkpointer": "ovcore.train.checkpoint",
    "atomic_save": "ovcore.train.checkpoint",
    "capture_rng_state": "ovcore.train.checkpoint",
    "load_checkpoint": "ovcore.train.checkpoint",
    "load_model_weights": "ovcore.train.checkpoint",
    "restore_rng_state": "ovcore.train.checkpoint",
    "preset_cli": "ovcore.train.cli",
    "OptimConfig": "ovcore.train.config",
    "ScheduleConfig": "ovcore.train.config",
    "TrainConfig": "ovcore.train.config",
    "config_to_dict": "ovcore.train.config",
    "ResumableLoader": "ovcore.train.data",
    "SeededSamples": "ovcore.train.data",
    "sample_seed": "ovcore.train.data",
    "DistInfo": "ovcore.train.distributed",
    "ResumableDistributedSampler": "ovcore.train.distributed",
    "all_gather_object": "ovcore.train.distributed",
    "all_reduce_mean": "ovcore.train.distributed",
    "barrier": "ovcore.train.distributed",
    "cleanup": "ovcore.train.distributed",
    "get_rank": "ovcore.train.distributed",
    "get_world_size": "ovcore.train.distributed",
    "init_distributed": "ovcore.train.distributed",
    "is_main_process": "ovcore.train.distributed",
    "resolve_device": "ovcore.train.distributed",
    "unwrap": "ovcore.train.distributed",
    "wrap_ddp": "ovcore.train.distributed",
    "EvaluateFn": "ovcore.train.engine",
    "StepCallback": "ovcore.train.engine",
    "TrainResult": "ovcore.train.engine",
    "seed_all": "ovcore.train.engine",
    "train": "ovcore.train.engine",
    "NORM_TYPES": "ovcore.train.optim",
    "add_rules": "ovcore.train.optim",
    "model_optim_config": "ovcore.train.optim",
    "build_optimizer": "ovcore.train.optim",
    "build_param_groups": "ovcore.train.optim",
    "lr_multiplier": "ovcore.train.optim",
    "named_trainable_parameters": "ovcore.train.optim",
    "weight_decay_of": "ovcore.train.optim",
    "dataset_transform": "ovcore.train.recipe",
    "describe_transform": "ovcore.train.recipe",
    "effective_recipe": "ovcore.train.recipe",
    "format_recipe": "ovcore.train.recipe",
    "LrFactor": "ovcore.train.schedule",
    "build_scheduler": "ovcore.train.schedule",
    "lr_factor": "ovcore.train.schedule",
}


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
    "add_rules",
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
    "model_optim_config",
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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
