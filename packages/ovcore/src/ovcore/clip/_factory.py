"""Create open_clip models by name with a pretrained tag, a local checkpoint or no weights."""

from __future__ import annotations

import difflib
import os
from copy import deepcopy
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from ._checkpoint import CHECKPOINT_SUFFIXES, load_clip_weights
from ._pretrained import get_pretrained_weights, resolve_pretrained

__all__ = ["create_clip", "get_tokenizer", "image_mean_std", "list_clip_models", "clip_model_config"]

_PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16")


def list_clip_models() -> list[str]:
    """All architecture names open_clip knows, including the ovcore test configs."""
    return open_clip.list_models()


def _canonical_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"CLIP model name must be a non-empty string, got {name!r}")
    cleaned = name.replace("/", "-")  # open_clip accepts "ViT-B/16" for "ViT-B-16"
    if cleaned not in open_clip.list_models():
        near = difflib.get_close_matches(cleaned, open_clip.list_models(), n=5, cutoff=0.5)
        hint = f"; did you mean one of {near}?" if near else "; see ovcore.clip.list_clip_models()"
        raise ValueError(f"unknown CLIP model {name!r}{hint}")
    return cleaned


def clip_model_config(name: str) -> dict[str, Any]:
    """A copy of open_clip's architecture config (``embed_dim``, ``vision_cfg``, ``text_cfg``) for ``name``.

    Raises:
        ValueError: unknown model name (the message lists near matches).
    """
    return deepcopy(open_clip.get_model_config(_canonical_name(name)))


def _is_path_like(pretrained: str | os.PathLike) -> bool:
    if isinstance(pretrained, os.PathLike):
        return True
    return pretrained.endswith(CHECKPOINT_SUFFIXES) or os.sep in pretrained or os.path.exists(pretrained)


def create_clip(
    name: str,
    pretrained: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | os.PathLike | None = None,
    drop_path: float | None = None,
    head_drop: float | None = None,
) -> open_clip.CLIP:
    """Build an open_clip CLIP model, optionally with weights.

    Args:
        name: open_clip architecture name (``"convnext_base_w_320"``, ``"ViT-B-16"``, ``"ovcore-convnext-tiny"``...).
        pretrained: None for random init; an open_clip pretrained tag (resolved from the local hub cache, downloaded
            only when the hub is online); or a local ``.bin`` / ``.pt`` / ``.pth`` / ``.safetensors`` file.
        device: target device; ``"meta"`` builds shapes only (random init only).
        precision: open_clip precision (``"fp32"``, ``"fp16"``, ``"bf16"``, ``"pure_fp16"``, ``"pure_bf16"``).
        cache_dir: hub cache root to look in / download to (default: the Hugging Face cache).
        drop_path: override the trunk's stochastic-depth rate (timm towers). open_clip 3.3 sets 0.1 for the ConvNeXt
            configs; SED's vendored open_clip 2.10.1 used none for ConvNeXt-B.
        head_drop: override the dropout inside the timm projection head (SED's ConvNeXt-L used 0.1).

    Returns:
        The model in eval mode, with ``model.visual.preprocess_cfg`` holding the mean/std of the weights.

    Raises:
        ValueError: unknown model name (with near matches), unknown tag, unsupported file or weights that do not fit.
        FileNotFoundError: ``pretrained`` names a local file that does not exist.
        RuntimeError: a tag whose weights are not cached while the hub is offline (names model, tag and path).
    """
    name = _canonical_name(name)
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")

    checkpoint: Path | None = None
    weights = None
    if pretrained is not None:
        if str(device) == "meta":
            raise ValueError("device='meta' builds shapes only; use pretrained=None")
        if isinstance(pretrained, str) and not pretrained:
            raise ValueError("pretrained must be a tag, a file path or None, got ''")
        weights = get_pretrained_weights(name, pretrained) if isinstance(pretrained, str) else None
        if weights is not None:
            checkpoint = resolve_pretrained(name, weights.tag, cache_dir)
        elif _is_path_like(pretrained):
            checkpoint = Path(pretrained)
            if not checkpoint.is_file():
                raise FileNotFoundError(f"CLIP checkpoint for model {name!r} not found: {str(checkpoint)!r}")
            if checkpoint.suffix not in CHECKPOINT_SUFFIXES:
                raise ValueError(f"unsupported checkpoint file {str(checkpoint)!r}; expected {CHECKPOINT_SUFFIXES}")
        else:
            tags = open_clip.list_pretrained_tags_by_model(name)
            raise ValueError(
                f"unknown pretrained tag {pretrained!r} for CLIP model {name!r}; known tags: {tags}, "
                f"or pass a path to a {'/'.join(CHECKPOINT_SUFFIXES)} file"
            )

    kwargs: dict[str, Any] = {}
    if drop_path is not None or head_drop is not None:
        vision_cfg = clip_model_config(name)["vision_cfg"]
        if "timm_model_name" not in vision_cfg:
            raise ValueError(f"drop_path/head_drop apply to timm vision towers; {name!r} is not one")
        if drop_path is not None:
            vision_cfg["timm_drop_path"] = drop_path
        if head_drop is not None:
            vision_cfg["timm_drop"] = head_drop
        vision_cfg["timm_model_pretrained"] = False
        kwargs["vision_cfg"] = vision_cfg

    build = dict(
        precision=precision,
        device=device,
        force_quick_gelu=bool(weights and weights.quick_gelu),  # OpenAI weights need QuickGELU to be correct
        pretrained_image=False,
        pretrained_text=False,
        **kwargs,
    )
    if str(device) == "meta":
        with torch.device("meta"):  # parameters never get real storage, so the big configs build instantly
            model = open_clip.create_model(name, None, **build)
    else:
        model = open_clip.create_model(name, None, **build)

    if checkpoint is not None:
        load_clip_weights(model, checkpoint)
    if weights is not None:
        cfg = dict(model.visual.preprocess_cfg)
        cfg.update(mean=tuple(weights.mean), std=tuple(weights.std))
        open_clip.model.set_model_preprocess_cfg(model, cfg)
    model.eval()
    return model


def get_tokenizer(name: str) -> Any:
    """open_clip's tokenizer for ``name``: ``tokenizer(list_of_str) -> LongTensor (N, context_length)``.

    Raises:
        ValueError: unknown model name.
    """
    return open_clip.get_tokenizer(_canonical_name(name))


def image_mean_std(name_or_model: str | nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel image mean and std in 0..1 (multiply by 255 for uint8 input).

    Args:
        name_or_model: an open_clip model (its preprocess config), ``"model"`` or ``"model:tag"``. A bare model name
            uses the mean/std shared by its registered tags, else OpenAI's.
    """
    if isinstance(name_or_model, nn.Module):
        visual = getattr(name_or_model, "visual", name_or_model)
        cfg = getattr(visual, "preprocess_cfg", None)
        if cfg is not None:
            return tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
        return tuple(getattr(visual, "image_mean", OPENAI_DATASET_MEAN)), tuple(
            getattr(visual, "image_std", OPENAI_DATASET_STD)
        )
    model_name, _, tag = str(name_or_model).partition(":")
    model_name = _canonical_name(model_name)
    tags = [tag] if tag else open_clip.list_pretrained_tags_by_model(model_name)
    stats = set()
    for t in tags:
        weights = get_pretrained_weights(model_name, t)
        if weights is None:
            raise ValueError(f"unknown pretrained tag {t!r} for CLIP model {model_name!r}")
        stats.add((tuple(float(v) for v in weights.mean), tuple(float(v) for v in weights.std)))
    if len(stats) == 1:
        return stats.pop()
    return tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)
