"""The training loop shared by every method.

A method plugs in three things: a model (or a zero-argument factory) whose ``forward(batch)`` in train mode returns
a dict of named scalar losses, a map-style training dataset of sample dicts, and optionally an evaluation callable
``evaluate_fn(model, iteration) -> dict`` (e.g. a closure over ``ovcore.evaluate.evaluate``). Everything else
(devices, torch.distributed, optimizer, schedule, AMP, accumulation, clipping, logging, checkpoints, resume) comes
from a :class:`~ovcore.train.config.TrainConfig`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ovcore.files import atomic_write_text, remove_stale_temporaries, write_json

from .checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpointer,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    state_dict_mismatch,
)
from .config import TrainConfig, config_to_dict
from .data import ResumableLoader
from .distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
    wrap_ddp,
)
from .optim import build_optimizer
from .recipe import effective_recipe, format_recipe
from .schedule import build_scheduler
from .tensorboard import VisualizeFn, log_eval, log_images, open_writer

logger = logging.getLogger(__name__)

EvaluateFn = Callable[[nn.Module, int], Mapping[str, Any]]
"""``evaluate_fn(model, iteration) -> results``: the unwrapped model is in eval mode under ``torch.no_grad``."""

StepCallback = Callable[[int, Mapping[str, float]], None]
"""``callback(iteration, losses)`` after every optimizer step (and its checkpoint / evaluation); the losses are this
process's, averaged over the step's micro-batches, with the weighted total under ``"loss"``."""


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank)."""

    iteration: int
    """Optimizer steps done."""
    losses: dict[str, float] = field(default_factory=dict)
    """Losses of the last logged window, averaged over processes."""
    eval_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Evaluation results by iteration (rank 0, or every rank with eval_all_ranks)."""
    checkpoint: Path | None = None
    """The last checkpoint written or resumed from."""
    output_dir: Path | None = None
    """The run directory."""
    is_main: bool = True
    """Whether this process was rank 0 (the one that wrote checkpoints and logs); train() has left the process
    group when it returns, so callers ask this instead of torch.distributed."""


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG, torch's CPU RNG and every CUDA RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _validate(cfg: TrainConfig, world_size: int, device: torch.device) -> int:
    if cfg.max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {cfg.max_iters}")
    if cfg.grad_accum_steps < 1 or cfg.log_every < 1:
        raise ValueError("grad_accum_steps and log_every must be >= 1")
    if cfg.checkpoint_every < 0 or cfg.eval_every < 0:
        raise ValueError("checkpoint_every and eval_every must be >= 0")
    if cfg.clip_grad_norm is not None and cfg.clip_grad_norm <= 0:
        raise ValueError(f"clip_grad_norm must be positive or None, got {cfg.clip_grad_norm}")
    per_step = world_size * cfg.grad_accum_steps
    if cfg.batch_size % per_step:
        raise ValueError(
            f"batch_size {cfg.batch_size} is not divisible by world_size x grad_accum_steps = "
            f"{world_size} x {cfg.grad_accum_steps}"
        )
    if cfg.amp == "fp16" and device.type != "cuda":
        raise RuntimeError("fp16 AMP needs a CUDA device; use --amp bf16 or --amp none on CPU")
    if hasattr(cfg, "validate"):  # the remaining numeric options (a plain namespace-like config may lack it)
        cfg.validate()
    return cfg.batch_size // per_step


def _check_output_dir(path: Path) -> None:
    # Before the model is built: a file in the way or a read-only folder would otherwise fail at the first save.
    from ovcore.cmd.errors import check_output_dir

    check_output_dir(path, "--output-dir")


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    # torch.use_deterministic_algorithms imports the whole compiler stack (3 s, 15 s without .pyc files) only to set
    # inductor's flag; set the ATen flag directly and hand inductor's to it through its environment variable in case
    # it is imported later (its lowerings also read the ATen flag themselves).
    torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"


@contextlib.contextmanager
def _torch_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Apply the run's numerics / determinism settings and restore the previous ones afterwards."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_float32_matmul_precision(),
        os.environ.get("TORCHINDUCTOR_DETERMINISTIC"),
    )
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    if cfg.deterministic:
        if device.type == "cuda":
            # cuBLAS is deterministic only with a fixed workspace; must be set before its first use.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: some CUDA kernels (e.g. bilinear upsampling backward) have no deterministic version.
        _set_deterministic(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    else:
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    try:
        yield
    finally:
        if cfg.deterministic:
            _set_deterministic(saved[0], warn_only=saved[1])
            if saved[5] is None:
                os.environ.pop("TORCHINDUCTOR_DETERMINISTIC", None)
            else:
                os.environ["TORCHINDUCTOR_DETERMINISTIC"] = saved[5]
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        torch.set_float32_matmul_precision(saved[4])


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=device.type == "cuda")
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _iteration_of_record(line: str) -> int | None:
    try:
        return int(json.loads(line)["iteration"])
    except (ValueError, TypeError, KeyError):
        return None


def _truncate_metrics(path: Path, iteration: int) -> None:
    # Records past the resumed checkpoint belong to the interrupted run's lost work; the resumed run rewrites them.
    # A process killed mid-append may leave a torn last line, which is dropped rather than failing the resume.
    if not path.exists():
        return
    records = [(line, _iteration_of_record(line)) for line in path.read_text().splitlines() if line.strip()]
    if any(it is None for _, it in records):
        logger.warning("dropped unreadable lines of %s (a run killed while writing it)", path)
    atomic_write_text(path, "".join(line + "\n" for line, it in records if it is not None and it <= iteration))


class _Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        info: DistInfo,
        model: nn.Module | Callable[[], nn.Module],
        dataset: Dataset | Callable[[], Dataset],
        evaluate_fn: EvaluateFn | None,
        collate_fn: Callable[[list[Any]], Any] | None,
        step_callback: StepCallback | None,
        recipe: Mapping[str, Any] | None = None,
        visualize_fn: VisualizeFn | None = None,
    ):
        self.cfg, self.info = cfg, info
        self.visualize_fn = visualize_fn
        self.method_recipe = dict(recipe or {})
        self.micro_batch = _validate(cfg, info.world_size, info.device)
        self.evaluate_fn, self.step_callback = evaluate_fn, step_callback
        self.loss_weights = dict(cfg.loss_weights)
        self.out = Path(cfg.output_dir)
        _check_output_dir(self.out)
        self.checkpointer = Checkpointer(self.out / "checkpoints", cfg.keep_last)
        # Read (and check) the checkpoint to resume from before building anything: a damaged file is reported at once.
        self.resume_path, resume_state = self._read_resume_state()

        # The model is initialised from the same seed on every rank (DDP also broadcasts rank 0's weights).
        seed_all(cfg.seed)
        module = model() if callable(model) and not isinstance(model, nn.Module) else model
        self.dataset = dataset() if callable(dataset) and not isinstance(dataset, Dataset) else dataset
        self.model = module.to(info.device).train()
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.max_iters, cfg.optim.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        # The group whose rate is logged as "lr": the first with multiplier 1 (the base rate), else the first.
        groups = self.optimizer.param_groups
        self.base_group = next((i for i, g in enumerate(groups) if g.get("lr_mult", 1.0) == 1.0), 0)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.start_iter = 0
        self.last_checkpoint: Path | None = None
        self._resume(self.resume_path, resume_state)
        del resume_state
        later = [p.name for p in self.checkpointer.list() if Checkpointer.iteration_of(p) > self.start_iter]
        if later:
            # Keeping them would mix two runs, and the keep-last rotation would delete this run's checkpoints.
            raise ValueError(
                f"{self.checkpointer.directory} holds checkpoints of another run past iteration {self.start_iter} "
                f"({later[-1]}); pass --resume, or choose another --output-dir"
            )
        self.ddp_model = wrap_ddp(
            self.model, info, find_unused_parameters=cfg.find_unused_parameters, sync_bn=cfg.sync_bn
        )
        self.loader = ResumableLoader(
            self.dataset,
            micro_batch=self.micro_batch,
            world_size=info.world_size,
            rank=info.rank,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            collate_fn=collate_fn,
            pin_memory=info.device.type == "cuda",
        )

    # ----------------------------------------------------------------------------------------------- checkpoints
    def _read_resume_state(self) -> tuple[Path | None, dict[str, Any] | None]:
        """The checkpoint to resume from and its content (None, None: start from scratch).

        Raises:
            ValueError: a missing, damaged or foreign file; the message names the option and what to do.
        """
        cfg = self.cfg
        if cfg.resume_from:
            path = Path(cfg.resume_from)
            if not path.is_file():
                raise ValueError(f"--resume-from {path} does not exist; give a ckpt_*.pt file of an earlier run")
            option, fix = f"--resume-from {path}", "pass another checkpoint of the run"
        elif cfg.resume:
            latest = self.checkpointer.latest()
            if latest is None:
                if self.info.is_main:
                    logger.warning("--resume: no checkpoint in %s, starting from scratch", self.checkpointer.directory)
                return None, None
            path = latest
            option = f"--resume: the latest checkpoint {path}"
            fix = "delete it to resume from the one before, or start afresh without --resume"
        else:
            return None, None
        try:
            state = load_checkpoint(path)
        except ValueError as err:
            raise ValueError(f"{option} cannot be read ({err}); {fix}") from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{option} is not a training checkpoint of ovcore.train (model weights only?); {fix}, or start "
                "from these weights with the method's own option (e.g. sed-train --init-checkpoint)"
            )
        return path, state

    def _load_resume_weights(self, path: Path, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            # load_state_dict lists every missing / unexpected key over many lines: keep the first one.
            option = "--resume-from" if self.cfg.resume_from else "--resume"
            raise ValueError(
                f"{option} checkpoint {path} does not fit this model and optimizer ({state_dict_mismatch(err)}); "
                "resume with the same model / preset the checkpoint was written with"
            ) from None

    def _resume(self, path: Path | None, state: dict[str, Any] | None) -> None:
        cfg = self.cfg
        if path is None or state is None:
            # Different ranks get different streams for dropout and the like.
            seed_all(cfg.seed + self.info.rank)
            return
        self._load_resume_weights(path, state)
        # Keep this run's schedule factors (a longer --max-iters extends the run) and take only the position.
        groups = self.optimizer.param_groups
        self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None] * len(groups)})
        for group, factor, base in zip(groups, self.scheduler.lr_lambdas, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor(self.scheduler.last_epoch)
        saved_max = state.get("config", {}).get("max_iters")
        if saved_max is not None and saved_max != cfg.max_iters and self.info.is_main:
            logger.warning(
                "max_iters changed from %d to %d: the schedule follows the new length", saved_max, cfg.max_iters
            )
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_iter = int(state["iteration"])
        if state.get("data", {}).get("batch_size") != cfg.batch_size and self.info.is_main:
            logger.warning("resuming with a different batch size: the data order will not match the first run")
        rng = state.get("rng") or []
        if len(rng) == self.info.world_size:
            restore_rng_state(rng[self.info.rank])
        else:
            logger.warning(
                "checkpoint has RNG states of %d processes, this run has %d: reseeding", len(rng), self.info.world_size
            )
            seed_all(cfg.seed + self.info.rank + 7919 * self.start_iter)
        self.last_checkpoint = path
        if self.info.is_main:
            logger.info("resumed from %s at iteration %d", path, self.start_iter)

    def _save(self, iteration: int) -> None:
        rng = all_gather_object(capture_rng_state())
        if self.info.is_main:
            micro_done = iteration * self.cfg.grad_accum_steps
            epoch, position = self.loader.position(micro_done)
            state = {
                "format": CHECKPOINT_FORMAT,
                "iteration": iteration,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                "rng": rng,
                "data": {
                    "epoch": epoch,
                    "micro_batch_in_epoch": position,
                    "micro_batches_done": micro_done,
                    "batch_size": self.cfg.batch_size,
                    "seed": self.cfg.seed,
                },
                "world_size": self.info.world_size,
                "config": config_to_dict(self.cfg),
            }
            logger.info("saved %s", self.checkpointer.save(state, iteration))
        barrier()
        # Every rank reports the file rank 0 wrote (TrainResult.checkpoint is documented for every rank).
        self.last_checkpoint = self.checkpointer.path_for(iteration)

    # ------------------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, iteration: int) -> dict[str, Any] | None:
        if self.evaluate_fn is None:
            return None
        results, images = None, []
        # Evaluation must not perturb the training RNG streams, or a resumed run (which skips this evaluation)
        # would diverge from an uninterrupted one.
        rng = capture_rng_state()
        if self.cfg.eval_all_ranks or self.info.is_main:
            self.model.eval()
            with torch.no_grad():
                results = dict(self.evaluate_fn(self.model, iteration))
                images = self._visualize(iteration)
            self.model.train()
        restore_rng_state(rng)
        if self.info.is_main and results is not None:
            write_json(self.out / "eval" / f"iter_{iteration:07d}.json", {"iteration": iteration, **results})
            if self.writer is not None:
                log_eval(self.writer, results, iteration)
                log_images(self.writer, images, iteration)
                self.writer.flush()  # evaluations are rare: make them visible in a running TensorBoard at once
        barrier()
        return results

    def _visualize(self, iteration: int) -> list[Any]:
        """The validation overlays of ``visualize_fn`` (rank 0, only when TensorBoard is on); a drawing failure is
        logged and skipped so that it never stops a training run."""
        if self.visualize_fn is None or not self.info.is_main or self.writer is None:
            return []
        try:
            return list(self.visualize_fn(self.model, iteration))
        except Exception:  # noqa: BLE001 (pictures are a convenience; the run and its metrics matter more)
            logger.exception("validation overlays failed at iteration %d; training goes on", iteration)
            return []

    # ------------------------------------------------------------------------------------------------------ loop
    def _forward_backward(self, batch: Any, sync: bool) -> dict[str, torch.Tensor]:
        ctx = contextlib.nullcontext() if sync or self.ddp_model is self.model else self.ddp_model.no_sync()
        with ctx:
            with torch.autocast(self.info.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                losses = self.ddp_model(batch)
            if not isinstance(losses, Mapping) or not losses:
                raise TypeError(f"model(batch) must return a non-empty dict of scalar losses, got {type(losses)}")
            total = sum(self.loss_weights.get(k, 1.0) * v.float() for k, v in losses.items())
            self.scaler.scale(total / self.cfg.grad_accum_steps).backward()
        out = {k: v.detach().float() for k, v in losses.items()}
        out["loss"] = total.detach()
        return out

    def _log(
        self, iteration: int, window: list[dict[str, float]], seconds: float, grad_norm: float | None, lr: float
    ) -> dict:
        keys = sorted(window[-1])
        means = all_reduce_mean({k: sum(w[k] for w in window) / len(window) for k in keys})
        if not self.info.is_main:
            return means
        record: dict[str, Any] = {
            "iteration": iteration,
            **means,
            "lr": lr,
            "images_per_s": self.cfg.batch_size * len(window) / max(seconds, 1e-9),
        }
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if k != "iteration":
                    self.writer.add_scalar(f"train/{k}", v, iteration)
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{means['loss']:.4g}",
                lr=f"{lr:.3g}",
                img_s=f"{record['images_per_s']:.1f}",
                refresh=False,
            )
        if self.bar is None or self.bar.disable:
            logger.info(
                "iter %d/%d  %s",
                iteration,
                self.cfg.max_iters,
                "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "iteration"),
            )
        return means

    def _effective_recipe(self) -> dict[str, Any]:
        try:
            num_images: int | None = len(self.dataset)  # type: ignore[arg-type]
        except TypeError:  # a dataset without a length
            num_images = None
        return effective_recipe(
            self.cfg,
            self.optimizer,
            self.scheduler,
            num_train_images=num_images,
            world_size=self.info.world_size,
            extra=self.method_recipe,
        )

    def run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        result = TrainResult(
            self.start_iter, output_dir=self.out, checkpoint=self.last_checkpoint, is_main=info.is_main
        )
        self.writer, self.bar = None, None
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            # Temporaries of a run killed while saving (checkpoints, config.json, metrics.jsonl rewrites).
            self.checkpointer.remove_stale_temporaries()
            remove_stale_temporaries(self.out)
            recipe = self._effective_recipe()
            logger.info("%s", format_recipe(recipe))
            write_json(self.out / "config.json", {**config_to_dict(cfg), "effective_recipe": recipe})
            if self.start_iter > 0:
                _truncate_metrics(self.out / "metrics.jsonl", self.start_iter)
            else:
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
            if cfg.tensorboard:
                self.writer = open_writer(self.out / "tensorboard", purge_step=self.start_iter + 1)
            self.bar = tqdm(
                total=cfg.max_iters, initial=self.start_iter, disable=not cfg.progress, desc="train", dynamic_ncols=True
            )
        unknown = set(self.loss_weights)
        data = self.loader.iterate(self.start_iter * cfg.grad_accum_steps)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        window: list[dict[str, float]] = []
        tic = time.perf_counter()
        try:
            for iteration in range(self.start_iter + 1, cfg.max_iters + 1):
                step: list[dict[str, torch.Tensor]] = []
                for micro in range(cfg.grad_accum_steps):
                    batch = _to_device(next(data), info.device)
                    step.append(self._forward_backward(batch, sync=micro == cfg.grad_accum_steps - 1))
                grad_norm = None
                if cfg.clip_grad_norm is not None:
                    self.scaler.unscale_(self.optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                lr = self.optimizer.param_groups[self.base_group]["lr"]  # the rate of this step, logged below
                self.scheduler.step()

                # One host sync per step: the losses, averaged over the micro-batches.
                keys = sorted(step[0])
                values = torch.stack([torch.stack([s[k] for s in step]).mean() for k in keys]).tolist()
                losses = dict(zip(keys, values, strict=True))
                if not math.isfinite(losses["loss"]):
                    raise FloatingPointError(f"loss is {losses['loss']} at iteration {iteration}: {losses}")
                unknown -= set(losses)
                window.append(losses)
                if self.bar is not None:
                    self.bar.update(1)

                if iteration % cfg.log_every == 0 or iteration == cfg.max_iters:
                    gn = float(grad_norm) if grad_norm is not None else None
                    result.losses = self._log(iteration, window, time.perf_counter() - tic, gn, lr)
                    window, tic = [], time.perf_counter()
                paused = time.perf_counter()
                if (cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0) or iteration == cfg.max_iters:
                    self._save(iteration)
                if (cfg.eval_every and iteration % cfg.eval_every == 0) or (
                    cfg.eval_at_end and iteration == cfg.max_iters
                ):
                    res = self._evaluate(iteration)
                    if res is not None:
                        result.eval_results[iteration] = res
                # images_per_s measures training only: move the window's start past the checkpoint / evaluation time
                # (resetting it would drop the window's earlier steps when these do not fall on a logged iteration).
                tic += time.perf_counter() - paused
                result.iteration = iteration
                if self.step_callback is not None:
                    self.step_callback(iteration, losses)
            if unknown:
                warnings.warn(f"loss_weights name losses the model never returned: {sorted(unknown)}", stacklevel=2)
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.writer is not None:
                self.writer.close()
        result.checkpoint = self.last_checkpoint
        return result


def train(
    cfg: TrainConfig,
    model: nn.Module | Callable[[], nn.Module],
    dataset: Dataset | Callable[[], Dataset],
    *,
    evaluate_fn: EvaluateFn | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    step_callback: StepCallback | None = None,
    recipe: Mapping[str, Any] | None = None,
    visualize_fn: VisualizeFn | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` for ``cfg.max_iters`` optimizer steps, single-process or under torchrun.

    Args:
        cfg: Training options (a method's config may subclass :class:`TrainConfig`).
        model: The model, or a zero-argument factory called after seeding with ``cfg.seed`` (preferred: the
            initialisation is then reproducible). ``model(batch)`` in train mode returns a dict of named scalar
            losses; the engine sums them with ``cfg.loss_weights`` (default 1) and logs each. A model may define
            ``param_groups(optim_cfg)`` to choose its own optimizer groups (see ``build_optimizer``).
        dataset: Map-style dataset (or factory) of samples; micro-batches are collated with ``collate_fn`` and moved
            to the device (tensors inside dicts / lists included).
        evaluate_fn: ``evaluate_fn(model, iteration) -> dict`` run every ``cfg.eval_every`` iterations and at the end;
            its result is written to ``output_dir/eval/iter_XXXXXXX.json`` and its numbers to TensorBoard
            (``eval/<key>``; its ``per_class_IoU`` as ``val/iou/<class>``, ``ovcore.train.tensorboard``).
        collate_fn: DataLoader collate function (default: torch's ``default_collate``).
        step_callback: Called as ``step_callback(iteration, losses)`` after every step (hooks, tests).
        recipe: The method's sections of the effective recipe (e.g. ``{"augmentation": describe_transform(t)}``);
            the engine adds the training, optimizer and schedule sections, logs the whole recipe at the start and
            saves it in ``config.json`` under ``"effective_recipe"`` (``ovcore.train.recipe``).
        visualize_fn: ``visualize_fn(model, iteration) -> images`` called after each evaluation on rank 0 when
            TensorBoard is on; the images go to ``val/overlay/<i>`` (e.g.
            ``ovcore.train.tensorboard.validation_overlays``).

    Returns:
        A :class:`TrainResult`.
    """
    info = init_distributed(cfg.device, cfg.dist_backend, cfg.dist_timeout_min)
    try:
        with _torch_settings(cfg, info.device):
            return _Trainer(cfg, info, model, dataset, evaluate_fn, collate_fn, step_callback, recipe,
                            visualize_fn).run()
    finally:
        cleanup(info)
