"""CLIP-ZSS's training recipe against mmseg's Swin-B UPerNet recipe and ZegCLIP's configs (README "Training recipe").

* Weight decay: mmseg's Swin recipe exempts norm layers and the position tables only; biases decay.
* Padding: mmseg pads after normalising, with 0, so both the student and the CLIP teacher see 0 on the crop padding
  (their own mean colour), never black; the label padding stays ignore.
* ``--recipe``: the mmseg recipe by default, ZegCLIP's schedule one flag away.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clipzss.cli import train as train_cli
from ovcore.data import DemoSegmentation, MMSegTrainTransform, collate_samples
from ovcore.train import OptimConfig, build_optimizer, build_param_groups

# ------------------------------------------------------------------------------------------------ weight decay


def _decay_by_name(model: Any, cfg: OptimConfig) -> dict[str, float]:
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_param_groups(model, model.default_optim(cfg))
    return {names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]}


def test_weight_decay_is_mmseg_swin_recipe(make_tiny) -> None:
    model = make_tiny("clipzss_tiny_swin_upernet")
    decay = _decay_by_name(model, OptimConfig(lr=6e-5, weight_decay=0.01))
    tables = [n for n in decay if "relative_position_bias_table" in n]
    norms = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.BatchNorm2d))]
    assert tables and norms
    assert all(decay[n] == 0.0 for n in tables)
    assert all(decay[f"{m}.{p}"] == 0.0 for m in norms for p in ("weight", "bias") if f"{m}.{p}" in decay)
    # Biases of linear / conv layers decay, in the backbone and in the head (mmseg has no bias rule).
    qkv_bias = next(n for n in decay if n.endswith("attn.qkv.bias"))
    assert decay[qkv_bias] == 0.01
    head_bias = [n for n in decay if n.startswith("student.") and not n.startswith("student.backbone.")]
    head_bias = [n for n in head_bias if n.endswith(".bias") and not any(n.startswith(m + ".") for m in norms)]
    assert head_bias and all(decay[n] == 0.01 for n in head_bias)
    # The learned logit scales are never decayed (this project's choice), whatever the rule.
    assert decay["log_alpha"] == decay["bce_log_scale"] == decay["bce_bias"] == 0.0


def test_no_decay_1d_option_exempts_biases(make_tiny) -> None:
    model = make_tiny("clipzss_tiny_swin_upernet")
    decay = _decay_by_name(model, OptimConfig(lr=6e-5, weight_decay=0.01, decay_1d=False))
    assert all(w == 0.0 for n, w in decay.items() if model.get_parameter(n).ndim <= 1)
    assert any(w == 0.01 for w in decay.values())


def test_engine_optimizer_uses_the_same_rule(make_tiny) -> None:
    model = make_tiny("clipzss_tiny_swin_upernet")
    opt = build_optimizer(model, OptimConfig(lr=6e-5, weight_decay=0.01))
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {names[id(p)]: g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert by_name == _decay_by_name(model, OptimConfig(lr=6e-5, weight_decay=0.01))


# ------------------------------------------------------------------------------------------------ padding


def _padded_batch(n: int = 2) -> dict[str, Any]:
    """Crops of 40x40 scenes padded to the model's 64 crop by the mmseg pipeline (bottom and right)."""
    scenes = DemoSegmentation(n, size=40, seed=0)
    t = MMSegTrainTransform(
        scale=(160, 40), ratio_range=(1.0, 1.0), crop_size=(64, 64), cat_max_ratio=1.0, flip_prob=0.0,
        photometric=False,
    )  # fmt: skip
    return collate_samples([t(scenes[i], generator=torch.Generator().manual_seed(i)) for i in range(n)])


def _network_inputs(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """What the student and the teacher receive in a training step."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.student.register_forward_pre_hook(lambda m, args: seen.setdefault("student", args[0].detach())),
        model.teacher.register_forward_pre_hook(lambda m, args: seen.setdefault("teacher", args[0].detach())),
    ]
    try:
        model.train()(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return seen["student"], seen["teacher"]


def test_transform_pads_like_mmseg() -> None:
    batch = _padded_batch()
    pad = batch["pad_mask"]
    assert pad.dtype == torch.bool and pad.shape == (2, 64, 64)
    assert pad[:, 40:].all() and pad[:, :, 40:].all() and not pad[:, :40, :40].any()
    assert (batch["label"][pad] == 255).all()  # the label padding stays ignore
    # The uint8 padding is mmseg's mean colour (what its 0 after normalisation is), not black.
    colour = batch["image"].permute(0, 2, 3, 1)[pad]
    assert (colour == torch.tensor([124, 116, 104], dtype=torch.uint8)).all()


@pytest.mark.parametrize("normalization", ["clip", "student"])
def test_student_and_teacher_see_zero_on_the_padding(make_tiny, normalization: str) -> None:
    model = make_tiny(teacher__normalization=normalization)
    if normalization == "clip":  # the two networks normalise with different means, so one colour cannot do
        assert not torch.allclose(model.student_mean, model.teacher_mean)
    batch = _padded_batch()
    student_x, teacher_x = _network_inputs(model, batch)
    pad = batch["pad_mask"][:, None].expand_as(student_x)
    assert student_x[pad].abs().max() == 0 and teacher_x[pad].abs().max() == 0
    # Inside the crop both see the image, normalised with their own mean / std.
    unit = batch["image"].float() / 255
    mean, std = model.teacher_mean.view(1, 3, 1, 1), model.teacher_std.view(1, 3, 1, 1)
    if normalization == "student":
        mean, std = model.student_mean.view(1, 3, 1, 1), model.student_std.view(1, 3, 1, 1)
    assert torch.allclose(teacher_x[~pad], ((unit - mean) / std)[~pad], atol=1e-5)
    s_mean, s_std = model.student_mean.view(1, 3, 1, 1), model.student_std.view(1, 3, 1, 1)
    assert torch.allclose(student_x[~pad], ((unit - s_mean) / s_std)[~pad], atol=1e-5)


def test_black_padding_of_other_pipelines_is_zeroed_too(make_tiny) -> None:
    # A pipeline that pads with black and gives no mask: the inferred mask (black and ignore) is used.
    batch = _padded_batch()
    pad = batch.pop("pad_mask")
    batch["image"] = batch["image"].masked_fill(pad[:, None], 0)
    student_x, teacher_x = _network_inputs(make_tiny(), batch)
    pad = pad[:, None].expand_as(student_x)
    assert student_x[pad].abs().max() == 0 and teacher_x[pad].abs().max() == 0


# ------------------------------------------------------------------------------------------------ --recipe


def test_default_recipe_is_mmseg_swin() -> None:
    cfg = train_cli.build_config("voc_zs")
    assert cfg.recipe == "mmseg"
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.betas, cfg.optim.decay_1d) == (
        6e-5,
        0.01,
        (0.9, 0.999),
        True,
    )
    s = cfg.schedule
    assert (s.name, s.warmup_iters, s.warmup_ratio, s.power, s.min_lr) == ("poly", 1500, 1e-6, 1.0, 0.0)
    assert (cfg.model.backbone_lr_mult, cfg.model.head_lr_mult) == (1.0, 1.0)
    assert {"absolute_pos_embed", "relative_position_bias_table"} <= set(cfg.model.no_decay_names)


def test_zegclip_recipe_is_one_flag_away() -> None:
    cfg = train_cli.parse_args(["--experiment", "voc_zs", "--recipe", "zegclip"])
    assert cfg.recipe == "zegclip" and (cfg.optim.lr, cfg.optim.weight_decay) == (2e-5, 0.01)
    s = cfg.schedule
    assert (s.name, s.power, s.min_lr, s.min_lr_mode, s.warmup_iters, s.warmup_ratio) == (
        "poly",
        0.9,
        1e-6,
        "absolute",
        1500,
        1e-6,
    )
    assert (cfg.model.backbone_lr_mult, cfg.model.head_lr_mult) == (10.0, 10.0)
    assert (cfg.max_iters, cfg.batch_size) == (20_000, 16)  # the paper's values stay
    # A flag still overrides one value of the recipe.
    assert train_cli.parse_args(["--recipe", "zegclip", "--optim.lr", "1e-5"]).optim.lr == 1e-5


def test_zegclip_recipe_rates(make_tiny) -> None:
    cfg = train_cli.build_config("voc_zs", recipe="zegclip")
    model = make_tiny("clipzss_tiny_swin_upernet", backbone_lr_mult=10.0, head_lr_mult=10.0)
    rates = [g["lr"] for g in build_param_groups(model, model.default_optim(cfg.optim))]
    assert rates == pytest.approx([2e-4] * len(rates))


def test_unknown_recipe() -> None:
    with pytest.raises(ValueError, match="--recipe 'nope'"):
        train_cli.build_config("voc_zs", recipe="nope")
