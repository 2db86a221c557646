"""Training configuration as plain dataclasses.

The docstring under each field is what ``tyro`` prints for ``--help``, so every option of a training entry point is
documented where it is declared. A method's entry point subclasses :class:`TrainConfig` (adding its own ``model`` /
``data`` fields) so the shared options keep their flat names: ``--optim.lr``, ``--schedule.name``, ``--max-iters``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class OptimConfig:
    """AdamW with parameter groups (learning-rate multipliers and weight-decay exemptions by name)."""

    lr: float = 2e-4
    """Base learning rate (the rate of parameters with multiplier 1)."""

    weight_decay: float = 1e-4
    """Decoupled weight decay of ordinary parameters."""

    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""

    eps: float = 1e-8
    """AdamW epsilon."""

    use_model_param_groups: bool = True
    """Use the model's own param_groups(optim_cfg) method when it defines one; the name and layer-type rules below
    (weight_decay_norm, decay_1d, no_decay_names, lr_multipliers) then apply only as far as that method reads them."""

    weight_decay_norm: float = 0.0
    """Weight decay of the parameters of normalisation layers (instances of torch LayerNorm, GroupNorm, BatchNorm*,
    InstanceNorm*, LocalResponseNorm and their subclasses), as detectron2's WEIGHT_DECAY_NORM."""

    decay_1d: bool = True
    """Apply weight decay to biases and other 1-D parameters (layer scales, learned scalars) outside norm layers;
    --optim.no-decay-1d exempts them (timm's convention)."""

    no_decay_names: tuple[str, ...] = ()
    """Parameter-name patterns with no weight decay (substring, or fnmatch glob when it contains * ? [), e.g.
    'pos_block' or 'relative_position_bias_table' as in mmseg's custom_keys with decay_mult 0."""

    lr_multipliers: tuple[tuple[str, float], ...] = ()
    """Learning-rate multipliers as (parameter-name pattern, multiplier) pairs; a pattern is a substring, or an
    fnmatch glob when it contains * ? [. E.g. --optim.lr-multipliers clip_model 0.01 (SED's CLIP multiplier) or
    decode_head 10 (mmseg's head lr x10). When several patterns match a parameter, the longest wins (mmseg's rule).
    A dict also works when building configs in Python."""


@dataclass
class ScheduleConfig:
    """Per-iteration learning-rate schedule, applied to every parameter group relative to the group's own rate."""

    name: Literal["cosine", "poly", "constant"] = "cosine"
    """'cosine': lr * 0.5 * (1 + cos(pi * it / max_iters)) (detectron2 WarmupCosineLR); 'poly':
    lr * (1 - it / max_iters) ** power (mmseg PolyLR); 'constant': lr."""

    warmup_iters: int = 0
    """Linear warm-up length in iterations (0 disables it)."""

    warmup_ratio: float = 1e-6
    """Factor of the learning rate at iteration 0 of the warm-up (mmseg warmup_ratio, detectron2 WARMUP_FACTOR);
    it rises linearly to 1 at warmup_iters."""

    power: float = 0.9
    """Exponent of the poly schedule."""

    min_lr: float = 0.0
    """Final learning rate of the cosine / poly decay for the base group (detectron2 BASE_LR_END, mmseg min_lr)."""

    min_lr_mode: Literal["scaled", "absolute"] = "scaled"
    """'scaled': each group decays to min_lr times its lr multiplier (detectron2); 'absolute': every group decays
    to min_lr itself (mmcv's PolyLrUpdaterHook). The two differ only for groups with a multiplier."""


@dataclass
class TrainConfig:
    """Options of the shared training engine (ovcore.train)."""

    output_dir: str = "runs/train"
    """Directory for checkpoints, TensorBoard events, metrics.jsonl, config.json and evaluation results."""

    max_iters: int = 1000
    """Number of optimizer steps."""

    batch_size: int = 8
    """Global batch: images per optimizer step summed over all processes and accumulation steps."""

    grad_accum_steps: int = 1
    """Micro-batches accumulated per optimizer step; each process loads batch_size / (world_size * grad_accum_steps)
    images at a time."""

    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""

    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""

    clip_grad_norm: float | None = None
    """Full-model gradient clipping: max L2 norm over all parameters together (SED uses 0.01); None disables it."""

    loss_weights: tuple[tuple[str, float], ...] = ()
    """Weights of the named losses returned by the model as (name, weight) pairs, e.g. --loss-weights nel 0.5
    (missing names weigh 1; a dict also works in Python)."""

    amp: Literal["none", "bf16", "fp16"] = "none"
    """Automatic mixed precision. 'fp16' needs CUDA and uses a GradScaler; 'bf16' works on CUDA and CPU."""

    seed: int = 0
    """Seed of the model initialisation, data order, augmentations and every process's RNGs."""

    deterministic: bool = False
    """Deterministic algorithms only (torch.use_deterministic_algorithms, no cuDNN benchmark); slower on GPU."""

    cudnn_benchmark: bool = False
    """Let cuDNN pick the fastest convolution algorithms (ignored with --deterministic)."""

    float32_matmul_precision: Literal["highest", "high", "medium"] = "highest"
    """torch.set_float32_matmul_precision; 'high' allows TF32 matmuls on Ampere+ (SED's setting)."""

    num_workers: int = 4
    """DataLoader worker processes per training process."""

    device: str = "auto"
    """'auto' (cuda:LOCAL_RANK when CUDA is available, else cpu), 'cpu' or 'cuda'."""

    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"
    """torch.distributed backend under torchrun; 'auto' is nccl on CUDA and gloo on CPU."""

    dist_timeout_min: float = 60.0
    """Timeout of collective operations in minutes (rank 0 may evaluate while the others wait)."""

    find_unused_parameters: bool = False
    """DDP find_unused_parameters, for models whose forward skips some trainable parameters."""

    sync_bn: bool = False
    """Convert BatchNorm layers to SyncBatchNorm under DDP."""

    log_every: int = 20
    """Iterations between logged scalars (TensorBoard, metrics.jsonl, log lines)."""

    checkpoint_every: int = 5000
    """Iterations between checkpoints (one is always written at the end); 0 writes only the final one."""

    keep_last: int = 3
    """Number of checkpoints kept on disk (older ones are deleted); 0 keeps all."""

    eval_every: int = 0
    """Iterations between evaluations; 0 disables periodic evaluation."""

    eval_at_end: bool = True
    """Evaluate after the last iteration (when an evaluation function is given)."""

    eval_all_ranks: bool = False
    """Call the evaluation function on every process (it must then shard and all-reduce itself); by default only
    rank 0 evaluates while the others wait."""

    resume: bool = False
    """Resume from the latest checkpoint in output_dir/checkpoints (start from scratch when there is none)."""

    resume_from: str | None = None
    """Resume from this checkpoint file (overrides --resume)."""

    tensorboard: bool = True
    """Write TensorBoard scalars to output_dir/tensorboard (rank 0)."""

    progress: bool = True
    """Show a progress bar with the loss and images/s (rank 0)."""

    def validate(self) -> None:
        """Check every numeric option before anything is built; the messages name the command-line flags.

        A method's config overrides this (calling ``super().validate()``) to check its own fields. The engine calls
        it, and the training commands call it first, so ``--batch-size 0`` is reported at once.

        Raises:
            ValueError: a value outside its range.
        """
        from ovcore.cmd.errors import check_min, check_positive, check_range

        for option, value, minimum in (
            ("--max-iters", self.max_iters, 1),
            ("--batch-size", self.batch_size, 1),
            ("--grad-accum-steps", self.grad_accum_steps, 1),
            ("--log-every", self.log_every, 1),
            ("--num-workers", self.num_workers, 0),
            ("--checkpoint-every", self.checkpoint_every, 0),
            ("--keep-last", self.keep_last, 0),
            ("--eval-every", self.eval_every, 0),
            ("--schedule.warmup-iters", self.schedule.warmup_iters, 0),
            ("--optim.weight-decay", self.optim.weight_decay, 0),
            ("--optim.weight-decay-norm", self.optim.weight_decay_norm, 0),
            ("--schedule.min-lr", self.schedule.min_lr, 0),
        ):
            check_min(option, value, minimum)
        check_positive("--optim.lr", self.optim.lr)
        check_positive("--optim.eps", self.optim.eps)
        check_positive("--schedule.power", self.schedule.power)
        check_positive("--dist-timeout-min", self.dist_timeout_min)
        check_positive("--clip-grad-norm", self.clip_grad_norm)
        check_range("--schedule.warmup-ratio", self.schedule.warmup_ratio, 0.0, 1.0)
        for beta in self.optim.betas:
            check_range("--optim.betas", beta, 0.0, 1.0, open_high=True)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a (nested) config dataclass, for JSON files and checkpoints.

    Args:
        cfg: A dataclass instance (or anything ``json`` can already write).

    Returns:
        A dict of builtin types (tuples become lists).
    """
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type) else dict(cfg)
    return _plain(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):  # a path is saved as the path, not as "PosixPath('...')"
        return os.fspath(value)
    return repr(value)
