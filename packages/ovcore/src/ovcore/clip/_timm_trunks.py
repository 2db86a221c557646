"""Tiny timm ConvNeXt trunks for the test-size CLIP configs.

open_clip builds a ConvNeXt vision tower by timm model name only (no depths/dims overrides), so a tiny trunk that
keeps the structure of ``convnext_base`` (LayerNorm2d stem and head norm, channels-last Linear MLPs, four stages with
strides 4/8/16/32) has to be a registered timm architecture. It is registered here with timm's own decorator and
referenced by ``model_configs/ovcore-convnext-tiny*.json``.
"""

from __future__ import annotations

from typing import Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.convnext import ConvNeXt, checkpoint_filter_fn

__all__: list[str] = []  # timm's register_model appends the entrypoint names here

TINY_TRUNK_NAME = "ovcore_convnext_tiny_trunk"


def _create_convnext(variant: str, pretrained: bool = False, **kwargs: Any) -> ConvNeXt:
    if pretrained:
        raise ValueError(f"{variant} is a random-init test trunk and has no pretrained weights")
    return build_model_with_cfg(
        ConvNeXt,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=(0, 1, 2, 3), flatten_sequential=True),
        **kwargs,
    )


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (3, 64, 64),
        "pool_size": (2, 2),
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "first_conv": "stem.0",
        "classifier": "head.fc",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({TINY_TRUNK_NAME: _cfg()})


@register_model
def ovcore_convnext_tiny_trunk(pretrained: bool = False, **kwargs: Any) -> ConvNeXt:
    """ConvNeXt with one block per stage and dims (16, 32, 64, 128): convnext_base's layout at test size."""
    model_args = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
    return _create_convnext(TINY_TRUNK_NAME, pretrained=pretrained, **dict(model_args, **kwargs))
