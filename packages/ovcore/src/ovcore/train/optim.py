"""AdamW with parameter groups: learning-rate multipliers and weight-decay exemptions chosen by name and layer type.

The rules follow detectron2's ``get_default_optimizer_params`` (the SED recipe) and mmcv's ``custom_keys``
(the mmseg recipe used by ZegCLIP / CLIP-ZSS):

* only parameters with ``requires_grad`` are optimised; a parameter shared by several modules is counted once;
* parameters owned by a normalisation layer (an *instance* of a torch norm class, subclasses included) get
  ``weight_decay_norm``; a hand-written norm that is a plain ``nn.Module`` is an ordinary layer, as in detectron2;
* ``decay_1d=False`` also exempts biases and other 1-D parameters, ``no_decay_names`` exempts names by pattern;
* ``lr_multipliers`` scales the rate of matching names; the longest matching pattern wins.

Parameters with the same (multiplier, weight decay) share one group, which is equivalent for AdamW to detectron2's
one group per parameter and keeps the optimizer state small.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .config import OptimConfig

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)
"""Module types whose parameters are "norm" parameters (detectron2's list; SyncBatchNorm is a _BatchNorm)."""


def _matches(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def lr_multiplier(name: str, multipliers: Mapping[str, float] | Iterable[tuple[str, float]]) -> float:
    """Learning-rate multiplier of a parameter: the value of the longest matching pattern, else 1.

    Args:
        name: Full parameter name, e.g. ``"sem_seg_head.clip_model.visual.trunk.stem.0.weight"``.
        multipliers: Pattern -> multiplier (substring, or fnmatch glob when the pattern contains ``* ? [``), as a
            mapping or as pairs.
    """
    multipliers = dict(multipliers)
    matching = [p for p in multipliers if _matches(name, p)]
    if not matching:
        return 1.0
    return float(multipliers[max(matching, key=len)])


def named_trainable_parameters(model: nn.Module) -> Iterable[tuple[str, nn.Parameter, nn.Module]]:
    """``(full name, parameter, owning module)`` of every trainable parameter, each shared parameter once.

    The owning module is what the norm rules look at (``isinstance(module, NORM_TYPES)``).
    """
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            yield (f"{module_name}.{param_name}" if module_name else param_name), param, module


def weight_decay_of(
    name: str, param: nn.Parameter, module: nn.Module, cfg: OptimConfig, extra_no_decay: Iterable[str] = ()
) -> float:
    """Weight decay of one parameter under the rules of ``cfg`` (shared by every grouping, models' own included).

    Norm layers (by type) get ``cfg.weight_decay_norm``; names matching ``cfg.no_decay_names`` or
    ``extra_no_decay`` get 0; biases and other 1-D parameters get 0 only with ``cfg.decay_1d=False``; everything
    else gets ``cfg.weight_decay``. mmseg's recipes (custom_keys with ``decay_mult=0``) and detectron2's
    (WEIGHT_DECAY_NORM, biases decayed) are both this rule with different options.

    Args:
        name: Full parameter name.
        param: The parameter.
        module: The module that owns it (see :func:`named_trainable_parameters`).
        cfg: Optimizer options.
        extra_no_decay: More name patterns without decay (a model's position tables).
    """
    if isinstance(module, NORM_TYPES):
        return float(cfg.weight_decay_norm)
    patterns = (*cfg.no_decay_names, *extra_no_decay)
    if any(_matches(name, p) for p in patterns) or (not cfg.decay_1d and param.ndim <= 1):
        return 0.0
    return float(cfg.weight_decay)


def add_rules(
    cfg: OptimConfig,
    *,
    lr_multipliers: Mapping[str, float] | Iterable[tuple[str, float]] = (),
    no_decay_names: Iterable[str] = (),
) -> OptimConfig:
    """``cfg`` with a method's own grouping rules added under the user's (a model's ``default_optim``).

    A pattern the user's ``cfg.lr_multipliers`` also names keeps the user's multiplier; the no-decay patterns are
    the union of both lists.

    Args:
        cfg: The run's optimizer options.
        lr_multipliers: The method's pattern -> multiplier rules.
        no_decay_names: The method's patterns without weight decay.
    """
    rules = {**dict(lr_multipliers), **dict(cfg.lr_multipliers)}
    names = tuple(dict.fromkeys((*cfg.no_decay_names, *no_decay_names)))
    return dataclasses.replace(cfg, lr_multipliers=tuple(rules.items()), no_decay_names=names)


def model_optim_config(model: nn.Module, cfg: OptimConfig) -> OptimConfig:
    """The options :func:`build_optimizer` groups with: ``model.default_optim(cfg)`` when the model defines it (and
    ``cfg.use_model_param_groups``), else ``cfg``."""
    rules = getattr(model, "default_optim", None)
    if cfg.use_model_param_groups and callable(rules):
        return rules(cfg)
    return cfg


def build_param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """Parameter groups of ``model`` under the rules of ``cfg`` (see the module docstring).

    Args:
        model: The (unwrapped) model.
        cfg: Optimizer options.

    Returns:
        A list of optimizer groups, each with ``params``, ``lr`` (base lr x multiplier), ``weight_decay``,
        ``lr_mult`` and ``param_names``.
    """
    multipliers = dict(cfg.lr_multipliers)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    used_patterns: set[str] = set()
    for name, param, module in named_trainable_parameters(model):
        mult = lr_multiplier(name, multipliers)
        used_patterns.update(p for p in multipliers if _matches(name, p))
        wd = weight_decay_of(name, param, module, cfg)
        group = groups.setdefault(
            (mult, wd),
            {"params": [], "param_names": [], "lr": cfg.lr * mult, "weight_decay": wd, "lr_mult": mult},
        )
        group["params"].append(param)
        group["param_names"].append(name)
    unused = sorted(set(multipliers) - used_patterns)
    if unused:
        # A preset may name modules that a smaller variant lacks, so this is a warning, not an error.
        warnings.warn(f"lr_multipliers patterns match no trainable parameter: {unused}", stacklevel=2)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return list(groups.values())


def _normalise_custom_groups(model: nn.Module, groups: list[dict[str, Any]], cfg: OptimConfig) -> list[dict[str, Any]]:
    names = {id(p): n for n, p in model.named_parameters()}
    seen: set[int] = set()
    out = []
    for i, group in enumerate(groups):
        if "params" not in group:
            raise ValueError(f"param_groups()[{i}] has no 'params'")
        params = [p for p in group["params"] if p.requires_grad]
        for p in params:
            if id(p) in seen:
                raise ValueError(f"parameter {names.get(id(p), '?')} appears in several param_groups()")
            seen.add(id(p))
        if not params:
            continue
        mult = float(group.get("lr_mult", 1.0))
        out.append(
            {
                **{k: v for k, v in group.items() if k != "params"},
                "params": params,
                "param_names": [names.get(id(p), "?") for p in params],
                "lr": cfg.lr * mult,
                "lr_mult": mult,
                "weight_decay": float(group.get("weight_decay", cfg.weight_decay)),
            }
        )
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        warnings.warn(
            f"param_groups() leaves {len(missing)} trainable parameters out, e.g. {missing[:3]}", stacklevel=3
        )
    if not out:
        raise ValueError("param_groups() returned no trainable parameters")
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the parameter groups of ``model``.

    A model states its recipe as rules with a method ``default_optim(cfg: OptimConfig) -> OptimConfig`` (its
    learning-rate multipliers and no-decay names added to ``cfg``, e.g. with :func:`add_rules`); the groups are then
    :func:`build_param_groups` of that config. A model may instead define its own grouping with a method
    ``param_groups(cfg: OptimConfig) -> list[dict]``: each dict
    holds ``params`` and optionally ``lr_mult`` (default 1), ``weight_decay`` (default ``cfg.weight_decay``) and any
    extra keys (e.g. ``name``); the engine sets ``lr`` = ``cfg.lr * lr_mult``. Otherwise (or with
    ``cfg.use_model_param_groups=False``) :func:`build_param_groups` applies the name and layer-type rules of ``cfg``.

    Args:
        model: The unwrapped model (not the DDP wrapper, whose names carry a ``module.`` prefix).
        cfg: Optimizer options.
    """
    custom = getattr(model, "param_groups", None)
    if cfg.use_model_param_groups and callable(custom):
        if cfg.lr_multipliers or cfg.no_decay_names:
            warnings.warn(
                f"{type(model).__name__} defines param_groups(), which decides the groups: lr_multipliers and "
                "no_decay_names are not applied (pass --optim.no-use-model-param-groups to use them instead)",
                stacklevel=2,
            )
        groups = _normalise_custom_groups(model, list(custom(cfg)), cfg)
    else:
        groups = build_param_groups(model, model_optim_config(model, cfg))
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
