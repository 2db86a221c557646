"""MaskCLIP configuration, loaded from ``model_configs/*.json`` (configs as data, one file per preset)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovcore.configs import PresetConfig
from ovcore.configs import list_config_names as _config_names

__all__ = ["MaskCLIPConfig", "CONFIG_DIR", "INFERENCE_FIELDS", "list_config_names", "load_config"]

CONFIG_DIR = Path(__file__).parent / "model_configs"

INFERENCE_FIELDS = ("test_short_side", "test_max_size", "window_size", "window_stride", "logit_scale")
"""Fields that ``MaskCLIP.predict(images, **options)`` may override for one call."""


@dataclass
class MaskCLIPConfig(PresetConfig):
    """Everything that defines one MaskCLIP preset. Defaults are the ViT-B/16 preset's values.

    ``replace`` (unknown names or bad values raise ``ValueError``) and ``to_dict`` come from
    ``ovcore.configs.PresetConfig``.
    """

    config_kind: ClassVar[str] = "MaskCLIP"
    name: str = "maskclip_vit_b16"
    description: str = ""
    """One line for preset listings (the preset's docstring)."""
    # --- CLIP
    clip_model: str = "ViT-B-16"
    """open_clip architecture name: a ViT (value-embedding path) or a timm ConvNeXt (dense head)."""
    clip_pretrained: str | None = "openai"
    """open_clip tag used when ``create_maskclip(..., pretrained=True)``; None = random weights."""
    pos_interpolation: str = "bicubic"
    """ViT only: how the positional embedding is resized for inputs other than the native size."""
    # --- text side
    templates: str = "imagenet"
    """Template set of ``ovcore.text.get_templates`` (the 80 ImageNet prompts); embeddings are averaged over it."""
    vocabulary: str | list[str] = "coco_stuff_171"
    """Default class list: an ``ovcore.data`` dataset name or an explicit list (used until ``set_vocabulary``)."""
    # --- test pipeline
    test_short_side: int | None = 336
    """Resize so that the short side is at most this and the long side at most ``test_max_size`` (mmseg
    ``Resize(scale=(test_max_size, test_short_side), keep_ratio=True)``: up or down); None keeps the input size."""
    test_max_size: int = 2048
    window_size: int | None = 224
    """Sliding-window side in pixels (None: the whole resized image in one pass)."""
    window_stride: int = 112
    """Sliding-window stride in pixels."""
    logit_scale: float | None = 100.0
    """Softmax temperature: scores are ``logit_scale * cos``; None uses the CLIP's own ``logit_scale.exp()``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried with the preset (published figures, protocol)."""

    def __post_init__(self) -> None:
        if self.pos_interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"pos_interpolation must be 'bilinear' or 'bicubic', got {self.pos_interpolation!r}")
        _check_positive("test_short_side", self.test_short_side, allow_none=True)
        _check_positive("test_max_size", self.test_max_size)
        _check_positive("window_size", self.window_size, allow_none=True)
        _check_positive("window_stride", self.window_stride)
        if self.logit_scale is not None and not self.logit_scale > 0:
            raise ValueError(f"logit_scale must be None or > 0, got {self.logit_scale}")


def _check_positive(name: str, value: int | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def list_config_names() -> list[str]:
    """Names of the JSON configs in ``model_configs/`` (one preset each)."""
    return _config_names(CONFIG_DIR)


def load_config(name: str, **overrides: Any) -> MaskCLIPConfig:
    """Read ``model_configs/<name>.json`` (its ``base`` chain resolved) into a config, then apply ``overrides``.

    Raises:
        ValueError: no such config (the message lists them), or an unknown field.
    """
    return MaskCLIPConfig.from_json(CONFIG_DIR, name, **overrides)
