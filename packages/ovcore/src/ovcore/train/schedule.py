"""Per-iteration learning-rate schedules (cosine, poly, constant) with linear warm-up, one factor per group.

A group's rate at iteration ``it`` (the number of optimizer steps already taken) is
``initial_lr * factor(it)`` with

* cosine (detectron2 ``WarmupCosineLR``): ``decay = 0.5 * (1 + cos(pi * it / max_iters))``;
* poly (mmcv ``PolyLrUpdaterHook``): ``decay = (1 - it / max_iters) ** power``;
* ``factor = end + (1 - end) * decay``, where ``end`` is the final rate over the group's rate;
* linear warm-up (mmcv ``warmup='linear'``) multiplies the decayed factor by
  ``1 - (1 - it / warmup_iters) * (1 - warmup_ratio)`` while ``it < warmup_iters``.

The factors are callables of a ``torch.optim.lr_scheduler.LambdaLR``, one per group, so the groups keep their
learning-rate multipliers and the scheduler state is an ordinary ``state_dict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import ScheduleConfig


@dataclass
class LrFactor:
    """Picklable schedule factor of one parameter group (its attributes go into the scheduler's state_dict)."""

    name: str
    max_iters: int
    warmup_iters: int = 0
    warmup_ratio: float = 1.0
    power: float = 0.9
    end: float = 0.0

    def __call__(self, it: int) -> float:
        t = min(max(it, 0), self.max_iters)
        progress = t / self.max_iters
        if self.name == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.name == "poly":
            decay = (1.0 - progress) ** self.power
        elif self.name == "constant":
            decay = 1.0
        else:
            raise ValueError(f"unknown schedule {self.name!r}; expected 'cosine', 'poly' or 'constant'")
        factor = self.end + (1.0 - self.end) * decay if self.name != "constant" else 1.0
        if t < self.warmup_iters:
            factor *= 1.0 - (1.0 - t / self.warmup_iters) * (1.0 - self.warmup_ratio)
        return factor


def lr_factor(cfg: ScheduleConfig, it: int, max_iters: int, end: float = 0.0) -> float:
    """Schedule factor at iteration ``it`` (see the module docstring).

    Args:
        cfg: Schedule options.
        it: Optimizer steps already taken (0 for the first step).
        max_iters: Total number of steps.
        end: Final rate over the group's initial rate.
    """
    return _factor(cfg, max_iters, end)(it)


def _factor(cfg: ScheduleConfig, max_iters: int, end: float) -> LrFactor:
    if max_iters <= 0:
        raise ValueError(f"max_iters must be positive, got {max_iters}")
    if cfg.warmup_iters < 0 or not 0.0 <= cfg.warmup_ratio <= 1.0:
        raise ValueError(f"bad warm-up: warmup_iters={cfg.warmup_iters}, warmup_ratio={cfg.warmup_ratio}")
    return LrFactor(cfg.name, max_iters, cfg.warmup_iters, cfg.warmup_ratio, cfg.power, end)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, max_iters: int, base_lr: float) -> LambdaLR:
    """A ``LambdaLR`` with one :class:`LrFactor` per parameter group; call ``.step()`` after every optimizer step.

    Args:
        optimizer: Optimizer whose groups carry their own ``lr`` (base rate x multiplier).
        cfg: Schedule options.
        max_iters: Total number of optimizer steps.
        base_lr: The base rate (``OptimConfig.lr``), which ``min_lr`` refers to in 'scaled' mode.
    """
    factors = []
    for group in optimizer.param_groups:
        group_lr = group.get("initial_lr", group["lr"])
        if cfg.min_lr_mode == "absolute":
            end = cfg.min_lr / group_lr if group_lr > 0 else 0.0
        elif cfg.min_lr_mode == "scaled":
            end = cfg.min_lr / base_lr if base_lr > 0 else 0.0
        else:
            raise ValueError(f"unknown min_lr_mode {cfg.min_lr_mode!r}")
        factors.append(_factor(cfg, max_iters, end))
    return LambdaLR(optimizer, lr_lambda=factors)
