"""SED architecture / recipe configuration, loaded from `model_configs/*.json` (open_clip's configs-as-data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovcore.configs import PresetConfig
from ovcore.configs import list_config_names as _config_names

__all__ = ["SEDConfig", "CONFIG_DIR", "list_config_names", "load_config"]

CONFIG_DIR = Path(__file__).parent / "model_configs"

# Official MODEL.CLIP_PIXEL_MEAN / STD (OpenAI CLIP mean/std x 255), applied to 0..255 RGB.
CLIP_PIXEL_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.3231630)


@dataclass
class SEDConfig(PresetConfig):
    """Everything that defines one SED preset. Field defaults are the official ConvNeXt-B values.

    ``replace`` (unknown names raise ``ValueError``) and ``to_dict`` come from ``ovcore.configs.PresetConfig``.
    """

    config_kind: ClassVar[str] = "SED"
    name: str = "sed_convnext_b_768"
    description: str = ""
    """One line for preset listings (the preset's docstring)."""
    # --- CLIP (hierarchical image encoder + frozen text tower)
    clip_model: str = "convnext_base_w_320"
    """open_clip architecture name."""
    clip_pretrained: str | None = "laion_aesthetic_s13b_b82k"
    """open_clip tag used when `create_sed(..., pretrained_clip=True)`."""
    clip_drop_path: float = 0.0
    """Trunk stochastic depth in training (official: 0 for B, 0.1 for L; open_clip 3.x's own default is 0.1)."""
    clip_head_drop: float = 0.0
    """Dropout inside the mlp projection head (official L: 0.1)."""
    pixel_mean: tuple[float, float, float] = CLIP_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = CLIP_PIXEL_STD
    # --- text side
    templates: str = "imagenet"
    """Template set of `ovcore.text.get_templates`; its size must equal `num_templates`."""
    num_templates: int = 80
    """P: cost-map channels. The decoder's conv1 and cost-guidance chain are built for exactly this many."""
    vocabulary: str | list[str] = "coco_stuff_171"
    """Default class list: an `ovcore.data` dataset name or an explicit list (used until `set_vocabulary`)."""
    # --- input pipeline (official SED ``sed/sed_model.py`` inference)
    input_size: int = 768
    """Every image is warped (aspect ratio not kept) to input_size x input_size inside the model."""
    test_short_side: int | None = 640
    """predict(): resize the short side to this (PIL bilinear, long side <= test_max_size) first; None skips."""
    test_max_size: int = 2560
    # --- decoder (SED paper Sec. 3.2, official ``sed/modeling/transformer/model.py``)
    hidden_dim: int = 128
    decoder_dims: tuple[int, int, int] = (64, 32, 16)
    guidance_proj_dims: tuple[int, int, int] = (32, 16, 8)
    num_heads: int = 4
    kernel_sizes: tuple[int, int, int] = (9, 9, 9)
    pooling_train: int = 2
    pooling_eval: int = 1
    layer_scale_init: float = 1.0
    # --- inference / losses / optimisation
    cer_topk: int | None = None
    """Default k of category early rejection in predict(); None = plain decoder (the official default eval)."""
    loss_ignore: str = "negative"
    """'negative': ignored pixels are all-zero targets (official); 'mask': they are left out of the loss."""
    ignore_index: int = 255
    clip_lr_multiplier: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes carried with the preset (paper numbers, weight URLs)."""

    def __post_init__(self) -> None:
        for name in ("decoder_dims", "guidance_proj_dims", "kernel_sizes", "pixel_mean", "pixel_std"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.loss_ignore not in ("negative", "mask"):
            raise ValueError(f"loss_ignore must be 'negative' or 'mask', got {self.loss_ignore!r}")
        if self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32 (the encoder stride), got {self.input_size}")
        if self.cer_topk is not None and self.cer_topk < 1:
            raise ValueError(f"cer_topk must be None or >= 1, got {self.cer_topk}")


def list_config_names() -> list[str]:
    """Names of the JSON configs in `model_configs/` (one preset each)."""
    return _config_names(CONFIG_DIR)


def load_config(name: str, **overrides: Any) -> SEDConfig:
    """Read `model_configs/<name>.json` (with its ``base`` chain resolved) into an `SEDConfig`, then apply `overrides`.

    Raises:
        ValueError: no such config (the message lists them), or an unknown field.
    """
    return SEDConfig.from_json(CONFIG_DIR, name, **overrides)
