"""The effective training recipe of a run: every optimiser, schedule, batch and augmentation value, as plain data.

The engine prints it at the start of a run and saves it under ``"effective_recipe"`` in the run's ``config.json``,
so a run can be compared with a paper's implementation details without reading code. "Effective" means the values
the run really uses: the optimizer's groups as built (each group's rate and weight decay after multipliers and
exemptions), the learning rate at the schedule's milestones, the per-process batch, and the attributes of the
transform object itself rather than the options it was built from. A method adds its own sections (augmentation,
test pipeline) through :func:`describe_transform` and the ``recipe`` argument of :func:`ovcore.train.train`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig, config_to_dict

__all__ = [
    "dataset_transform",
    "describe_transform",
    "effective_recipe",
    "format_recipe",
    "optimizer_recipe",
    "schedule_recipe",
]


def _plain(value: Any) -> Any:
    return config_to_dict({"v": value})["v"]


def describe_transform(transform: Any) -> dict[str, Any]:
    """A transform's type and public attributes (its effective parameters), as plain data.

    Args:
        transform: Any object; attributes starting with ``_`` and RNG generators are left out.

    Returns:
        ``{"type": class name, attribute: value, ...}``; an object without attributes gives its ``repr``.
    """
    attrs = getattr(transform, "__dict__", None)
    if not attrs:
        return {"type": type(transform).__name__, "repr": repr(transform)}
    out: dict[str, Any] = {"type": type(transform).__name__}
    for key, value in attrs.items():
        if key.startswith("_") or key == "generator" or isinstance(value, torch.Generator):
            continue
        out[key] = _plain(value)
    return out


def dataset_transform(dataset: Any) -> Any:
    """The transform a dataset applies: its ``transform``, looked up through wrappers (``Subset.dataset``)."""
    for _ in range(8):  # wrappers nest a few levels at most
        transform = getattr(dataset, "transform", None)
        if transform is not None:
            return transform
        dataset = getattr(dataset, "dataset", None)
        if dataset is None:
            break
    return None


def optimizer_recipe(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's type, hyper-parameters and parameter groups as built.

    Each group lists its name (``name`` key, else its multiplier and decay), base rate (before the schedule),
    multiplier, weight decay, number of tensors and of scalars, and its first three parameter names.
    """
    defaults = optimizer.defaults
    groups = []
    for i, group in enumerate(optimizer.param_groups):
        names = list(group.get("param_names", []))
        lr = group.get("initial_lr", group["lr"])
        groups.append(
            {
                "name": group.get("name", f"group{i}"),
                "lr": float(lr),
                "lr_mult": float(group.get("lr_mult", 1.0)),
                "weight_decay": float(group["weight_decay"]),
                "tensors": len(group["params"]),
                "parameters": int(sum(p.numel() for p in group["params"])),
                "examples": names[:3],
            }
        )
    keys = ("betas", "eps", "amsgrad", "weight_decay")
    return {
        "type": type(optimizer).__name__,
        **{k: _plain(defaults[k]) for k in keys if k in defaults},
        "groups": groups,
    }


def schedule_recipe(scheduler: LambdaLR, cfg: TrainConfig) -> dict[str, Any]:
    """The schedule's options and every group's learning rate at its milestones.

    Milestones: iteration 0, the end of the warm-up, the middle and the last iteration (``max_iters - 1``, the
    rate of the last step).
    """
    sched = cfg.schedule
    milestones = sorted({0, min(sched.warmup_iters, cfg.max_iters - 1), cfg.max_iters // 2, cfg.max_iters - 1})
    lr_at = []
    for group, factor in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        base = group.get("initial_lr", group["lr"])
        lr_at.append({str(it): float(base * factor(it)) for it in milestones})
    return {**config_to_dict(sched), "lr_at_iteration": lr_at}


def effective_recipe(
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR,
    *,
    num_train_images: int | None,
    world_size: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The effective recipe of a run (see the module docstring).

    Args:
        cfg: The run's config.
        optimizer: The optimizer as built (its groups, before any step).
        scheduler: Its scheduler (one factor per group).
        num_train_images: Size of the training set (None when it has no length).
        world_size: Number of processes.
        extra: Method sections (e.g. ``{"augmentation": describe_transform(t)}``), added as they are.

    Returns:
        ``{"training": ..., "optimizer": ..., "schedule": ..., **extra}`` of plain data.
    """
    per_process = cfg.batch_size // max(world_size * cfg.grad_accum_steps, 1)
    images_seen = cfg.max_iters * cfg.batch_size
    training = {
        "train_images": num_train_images,
        "iterations": cfg.max_iters,
        "global_batch": cfg.batch_size,
        "processes": world_size,
        "grad_accum_steps": cfg.grad_accum_steps,
        "batch_per_process_step": per_process,
        "epochs": round(images_seen / num_train_images, 2) if num_train_images else None,
        "clip_grad_norm": cfg.clip_grad_norm,
        "amp": cfg.amp,
        "loss_weights": _plain(dict(cfg.loss_weights)),
        "seed": cfg.seed,
    }
    recipe = {
        "training": training,
        "optimizer": optimizer_recipe(optimizer),
        "schedule": schedule_recipe(scheduler, cfg),
    }
    for key, value in (extra or {}).items():
        recipe[str(key)] = _plain(value)
    return recipe


def format_recipe(recipe: Mapping[str, Any]) -> str:
    """Readable lines of a recipe: ``section.key: value``, one optimizer group per line.

    Args:
        recipe: Output of :func:`effective_recipe`.
    """
    lines = ["effective recipe (also in config.json under 'effective_recipe'):"]
    for section, body in recipe.items():
        if not isinstance(body, Mapping):
            lines.append(f"  {section}: {_short(body)}")
            continue
        for key, value in body.items():
            if key == "groups" and isinstance(value, Sequence):
                lines.extend(_group_line(section, g) for g in value)
            else:
                lines.append(f"  {section}.{key}: {_short(value)}")
    return "\n".join(lines)


def _group_line(section: str, group: Mapping[str, Any]) -> str:
    return (
        f"  {section}.group {group['name']}: lr {group['lr']:.4g} (x{group['lr_mult']:g}), weight decay "
        f"{group['weight_decay']:g}, {group['tensors']} tensors / {group['parameters']:,} parameters, e.g. "
        f"{', '.join(group['examples']) or '-'}"
    )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)
