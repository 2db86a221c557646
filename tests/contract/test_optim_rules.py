"""Parameter groups as OptimConfig rules: a model's ``default_optim`` and the engine's generic grouping."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ovcore.train import OptimConfig, add_rules, build_optimizer, model_optim_config


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, 2)
        self.head = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
        self.scale = nn.Parameter(torch.ones(()))

    def default_optim(self, base: OptimConfig) -> OptimConfig:
        return add_rules(base, lr_multipliers={"encoder.*": 0.1}, no_decay_names=("scale",))


def _by_name(opt) -> dict[str, tuple[float, float]]:
    return {n: (g["lr"], g["weight_decay"]) for g in opt.param_groups for n in g["param_names"]}


def test_add_rules_puts_the_runs_own_options_first() -> None:
    base = OptimConfig(lr_multipliers={"encoder.*": 0.5, "head": 2.0}, no_decay_names=("pos",))
    cfg = add_rules(base, lr_multipliers={"encoder.*": 0.1, "other": 3.0}, no_decay_names=("scale", "pos"))
    assert dict(cfg.lr_multipliers) == {"encoder.*": 0.5, "other": 3.0, "head": 2.0}
    assert cfg.no_decay_names == ("pos", "scale")
    assert base.no_decay_names == ("pos",)  # the run's config is not modified


def test_build_optimizer_applies_the_models_rules() -> None:
    model = _Toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every rule matches: no "pattern matches nothing" warning
        got = _by_name(build_optimizer(model, OptimConfig(lr=1.0, weight_decay=0.5)))
    assert got["encoder.weight"] == (0.1, 0.5) and got["head.0.bias"] == (1.0, 0.5)
    assert got["head.1.weight"] == (1.0, 0.0) and got["scale"] == (1.0, 0.0)  # norm layer, no-decay name
    generic = _by_name(build_optimizer(model, OptimConfig(lr=1.0, weight_decay=0.5, use_model_param_groups=False)))
    assert generic["encoder.weight"] == (1.0, 0.5) and generic["scale"] == (1.0, 0.5)
    assert model_optim_config(nn.Linear(2, 2), OptimConfig()) == OptimConfig()
