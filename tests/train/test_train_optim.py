"""AdamW parameter groups: learning-rate multipliers by name, weight-decay exemptions by layer type and name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ovcore.train import OptimConfig, build_optimizer, build_param_groups, lr_multiplier


class LayerNorm2d(nn.LayerNorm):
    """A subclass of nn.LayerNorm, like timm's: still a norm layer."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PlainLayerNorm(nn.Module):
    """A hand-written norm (plain nn.Module, like SED's decoder ConvNeXt blocks): NOT a norm layer for the rules."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.clip_model = nn.Module()
        self.clip_model.visual = nn.Sequential(nn.Conv2d(3, 4, 3), LayerNorm2d(4), nn.BatchNorm2d(4))
        self.clip_model.visual.head = nn.Linear(4, 4)
        self.clip_model.text = nn.Linear(4, 4).requires_grad_(False)  # frozen: excluded
        self.decoder = nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4), PlainLayerNorm(4))
        self.decoder.gamma = nn.Parameter(torch.ones(4))
        self.pos_block = nn.Parameter(torch.zeros(1, 4, 2, 2))
        self.tied = nn.Linear(4, 4)
        self.decoder.tied = self.tied  # shared module: its parameters must appear once


def _lookup(groups):
    return {name: (g["lr"], g["weight_decay"]) for g in groups for name in g["param_names"]}


def test_lr_multiplier_longest_pattern_and_globs() -> None:
    mults = {"clip_model": 0.01, "clip_model.visual.head": 0.1, "*.bias": 2.0}
    assert lr_multiplier("clip_model.visual.0.weight", mults) == 0.01
    assert lr_multiplier("clip_model.visual.head.weight", mults) == 0.1
    assert lr_multiplier("clip_model.visual.head.bias", mults) == 0.1  # longest pattern wins over the glob
    assert lr_multiplier("decoder.0.bias", mults) == 2.0
    assert lr_multiplier("decoder.0.weight", mults) == 1.0


def test_sed_rules() -> None:
    model = Toy()
    cfg = OptimConfig(lr=2e-4, weight_decay=1e-4, lr_multipliers=(("clip_model", 0.01),))
    groups = build_param_groups(model, cfg)
    got = _lookup(groups)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(got) == trainable  # frozen text tower left out; the shared module counted once
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    assert "clip_model.text.weight" not in got
    # CLIP tower at 2e-6: conv and head decay, its LayerNorm2d (a LayerNorm subclass) and BatchNorm do not.
    assert got["clip_model.visual.0.weight"] == pytest.approx((2e-6, 1e-4))
    assert got["clip_model.visual.0.bias"] == pytest.approx((2e-6, 1e-4))
    assert got["clip_model.visual.1.weight"] == pytest.approx((2e-6, 0.0))
    assert got["clip_model.visual.2.bias"] == pytest.approx((2e-6, 0.0))
    assert got["clip_model.visual.head.weight"] == pytest.approx((2e-6, 1e-4))
    # Decoder at 2e-4: GroupNorm exempt; the plain-module norm, layer scale and biases decay (detectron2).
    assert got["decoder.1.weight"] == pytest.approx((2e-4, 0.0))
    assert got["decoder.2.weight"] == pytest.approx((2e-4, 1e-4))
    assert got["decoder.gamma"] == pytest.approx((2e-4, 1e-4))
    assert got["decoder.0.bias"] == pytest.approx((2e-4, 1e-4))
    assert got["pos_block"] == pytest.approx((2e-4, 1e-4))
    # Groups are merged by (lr, wd): 2 multipliers x 2 decays.
    assert len(groups) == 4


def test_mmseg_rules_no_decay_1d_and_names() -> None:
    cfg = OptimConfig(
        lr=6e-5, weight_decay=0.01, decay_1d=False, no_decay_names=("pos_block",), lr_multipliers={"decoder": 10.0}
    )
    got = _lookup(build_param_groups(Toy(), cfg))
    assert got["decoder.0.bias"] == pytest.approx((6e-4, 0.0))
    assert got["decoder.0.weight"] == pytest.approx((6e-4, 0.01))
    assert got["decoder.2.weight"] == pytest.approx((6e-4, 0.0))  # 1-D
    assert got["decoder.gamma"] == pytest.approx((6e-4, 0.0))
    assert got["pos_block"] == pytest.approx((6e-5, 0.0))  # by name, although 4-D
    assert got["clip_model.visual.head.weight"] == pytest.approx((6e-5, 0.01))


def test_weight_decay_norm_value_and_unused_pattern_warns() -> None:
    with pytest.warns(UserWarning, match="backbone"):
        got = _lookup(build_param_groups(Toy(), OptimConfig(weight_decay_norm=0.5, lr_multipliers={"backbone": 0.0})))
    assert got["decoder.1.weight"][1] == 0.5


def test_build_optimizer_is_adamw_with_options() -> None:
    cfg = OptimConfig(lr=1e-3, betas=(0.8, 0.9), eps=1e-6, lr_multipliers={"clip_model": 0.5})
    opt = build_optimizer(Toy(), cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert {g["betas"] for g in opt.param_groups} == {(0.8, 0.9)}
    assert {g["eps"] for g in opt.param_groups} == {1e-6}
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([5e-4, 1e-3])


def test_model_param_groups_method_is_honoured() -> None:
    class Custom(Toy):
        def param_groups(self, cfg):
            return [
                {"params": self.decoder.parameters(), "lr_mult": 3.0, "weight_decay": 0.0, "name": "decoder"},
                {"params": self.clip_model.parameters()},  # frozen ones are dropped
            ]

    model = Custom()
    with pytest.warns(UserWarning, match="leaves"):  # pos_block is in no group
        opt = build_optimizer(model, OptimConfig(lr=1e-3, weight_decay=0.2))
    assert [g["name"] for g in opt.param_groups[:1]] == ["decoder"]
    assert opt.param_groups[0]["lr"] == pytest.approx(3e-3) and opt.param_groups[0]["weight_decay"] == 0.0
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3) and opt.param_groups[1]["weight_decay"] == 0.2
    assert "clip_model.text.weight" not in opt.param_groups[1]["param_names"]

    with pytest.warns(UserWarning, match="not applied"), pytest.warns(UserWarning, match="leaves"):
        build_optimizer(model, OptimConfig(lr_multipliers=(("decoder", 2.0),)))
    opt = build_optimizer(model, OptimConfig(lr=1e-3, use_model_param_groups=False))  # the generic rules instead
    assert len(opt.param_groups) == 2 and "name" not in opt.param_groups[0]

    class Duplicate(Toy):
        def param_groups(self, cfg):
            return [{"params": self.decoder.parameters()}, {"params": self.decoder.parameters()}]

    with pytest.raises(ValueError, match="several"):
        build_optimizer(Duplicate(), OptimConfig())


def test_no_trainable_parameters() -> None:
    with pytest.raises(ValueError):
        build_param_groups(nn.Linear(2, 2).requires_grad_(False), OptimConfig())
