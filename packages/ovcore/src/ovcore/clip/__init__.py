"""CLIP loading on open_clip: factory, weights registry, checkpoints and dense image encoders.

Importing this package registers the test-size configs ``ovcore-convnext-tiny``, ``ovcore-convnext-tiny-mlp`` and
``ovcore-vit-tiny`` with open_clip (``open_clip.list_models()``) and their tiny timm trunk with timm.
"""

from __future__ import annotations

from pathlib import Path

import open_clip

from . import _timm_trunks  # noqa: F401  (registers the tiny timm trunk before any config refers to it)
from ._checkpoint import (
    CHECKPOINT_SUFFIXES,
    extract_clip_state_dict,
    load_clip_weights,
    read_state_dict,
    save_clip_weights,
)
from ._factory import clip_model_config, create_clip, get_tokenizer, image_mean_std, list_clip_models
from ._pretrained import (
    ClipWeights,
    expected_weight_paths,
    find_cached_weights,
    get_pretrained_weights,
    hf_hub_cache_dir,
    is_hub_offline,
    list_pretrained,
    resolve_pretrained,
)
from .encoders import FEATURE_NAMES, FEATURE_STRIDES, ConvNeXtCLIPEncoder, ViTCLIPEncoder

__all__ = [
    "TINY_MODELS",
    "create_clip",
    "get_tokenizer",
    "image_mean_std",
    "list_clip_models",
    "clip_model_config",
    "ClipWeights",
    "list_pretrained",
    "get_pretrained_weights",
    "expected_weight_paths",
    "find_cached_weights",
    "resolve_pretrained",
    "hf_hub_cache_dir",
    "is_hub_offline",
    "CHECKPOINT_SUFFIXES",
    "read_state_dict",
    "extract_clip_state_dict",
    "load_clip_weights",
    "save_clip_weights",
    "ConvNeXtCLIPEncoder",
    "ViTCLIPEncoder",
    "FEATURE_NAMES",
    "FEATURE_STRIDES",
]

TINY_MODELS = ("ovcore-convnext-tiny", "ovcore-convnext-tiny-mlp", "ovcore-vit-tiny")

_CONFIG_DIR = Path(__file__).parent / "model_configs"
if not set(TINY_MODELS) <= set(open_clip.list_models()):
    open_clip.add_model_config(_CONFIG_DIR)
