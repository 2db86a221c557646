"""Inference: the student and the text embeddings only (paper §3.4, spec §5.7). No CLIP image tower is built.

``logits = alpha * normalize(R) . T_all - gamma * [class is seen]`` (gamma = seen calibration, spec §5.6 reading (a)),
upsampled bilinearly to the input size. :class:`ZeroShotSegmenter` loads from the payload of
``CLIPZSS.export_inference_state_dict()`` (a dict of tensors and builtins, safe for ``torch.load(weights_only=True)``).
Switching to names outside the stored table encodes them with a text-only CLIP tower (:class:`clipzss.text.TextTower`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import CLIPZSSConfig, config_from_dict
from .losses import classifier_logits
from .students import Student, student_config_for_crop

__all__ = [
    "INFERENCE_FORMAT",
    "ZeroShotSegmenter",
    "normalize_images",
    "sliding_window",
    "student_scores",
    "text_logits",
]

INFERENCE_FORMAT = "clipzss-inference-v1"


def normalize_images(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float normalised; float input is returned as is (assumed normalised already).

    Args:
        images: uint8 0..255 or normalised float.
        mean: (3,) mean in 0..1.
        std: (3,) std in 0..1.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.float() / 255.0
        return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 or float, got {images.dtype}")
    return images.float()


def text_logits(
    features: torch.Tensor,
    text: torch.Tensor,
    alpha: torch.Tensor | float,
    *,
    seen_mask: torch.Tensor | None = None,
    calibration: float = 0.0,
    normalize_features: bool = True,
) -> torch.Tensor:
    """(B, C, h, w) features -> (B, T, h, w) logits ``alpha * R_hat . T`` minus the seen calibration."""
    # The text branch of the training classifier (Eq. 7) without pseudo prototypes: one definition for both.
    out = classifier_logits(features, text, alpha, normalize_features=normalize_features)
    if calibration and seen_mask is not None:
        out = out - calibration * seen_mask.to(out.dtype).view(1, -1, 1, 1)
    return out


def sliding_window(fn: Any, images: torch.Tensor, num_classes: int, crop: int, stride: int) -> torch.Tensor:
    """mmseg "slide" inference: average the logits of overlapping ``crop`` windows (ZegCLIP: 512, stride 426).

    Windows that stick out of a small image are zero-padded to ``crop`` (fixed-size input for window-attention
    backbones) and their logits cropped back.

    Args:
        fn: ``fn(x (B, 3, crop, crop)) -> (B, T, crop, crop)`` logits at input size.
        images: (B, 3, H, W) normalised images.
        num_classes: T.
        crop: Window size.
        stride: Window stride.

    Returns:
        (B, T, H, W) logits.
    """
    b, _, h, w = images.shape
    out = images.new_zeros(b, num_classes, h, w)
    count = images.new_zeros(1, 1, h, w)
    rows = max(h - crop + stride - 1, 0) // stride + 1
    cols = max(w - crop + stride - 1, 0) // stride + 1
    for i in range(rows):
        for j in range(cols):
            y1, x1 = i * stride, j * stride
            y2, x2 = min(y1 + crop, h), min(x1 + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            patch = images[:, :, y1:y2, x1:x2]
            ph, pw = patch.shape[-2:]
            if (ph, pw) != (crop, crop):
                patch = F.pad(patch, (0, crop - pw, 0, crop - ph))
            out[:, :, y1:y2, x1:x2] += fn(patch)[:, :, :ph, :pw]
            count[:, :, y1:y2, x1:x2] += 1
    return out / count


class ZeroShotSegmenter(nn.Module):
    """The CLIP-ZSS inference model: student + text embeddings (+ alpha and the seen calibration).

    Args:
        cfg: The training config (student architecture, crop size, calibration, test mode).
        embed_dim: C.
        logit_scale: alpha.
        seen_class_names: Names of the training seen classes (the calibration applies to these).
        text_encoder: Optional ``{"model_name", "pretrained", "quick_gelu", "state_dict"}`` to encode new names.
    """

    def __init__(
        self,
        cfg: CLIPZSSConfig,
        embed_dim: int,
        *,
        logit_scale: float = 1.0 / 0.07,
        seen_class_names: Sequence[str] = (),
        text_encoder: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        student_cfg = cfg.student
        if student_cfg.pretrained:
            # The checkpoint holds every student weight; do not look for the backbone's pretrained file.
            student_cfg = dataclasses.replace(student_cfg, pretrained=False)
        self.cfg = cfg
        self.student = Student(student_config_for_crop(student_cfg, cfg.crop_size), embed_dim)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))
        self.register_buffer("mean", torch.tensor(self.student.mean), persistent=False)
        self.register_buffer("std", torch.tensor(self.student.std), persistent=False)
        self.register_buffer("text_embeddings", torch.zeros(0, embed_dim), persistent=False)
        self.register_buffer("seen_mask", torch.zeros(0, dtype=torch.bool), persistent=False)
        self.seen_class_names = list(seen_class_names)
        self.class_names: list[str] = []
        self._table: dict[str, torch.Tensor] = {}
        self._text_encoder_spec = text_encoder
        # A list keeps the lazily built text tower out of the module tree (and out of state_dict()).
        self._text_tower_box: list[Any] = []

    # ------------------------------------------------------------------ vocabulary

    def add_embeddings(self, class_names: Sequence[str], embeddings: torch.Tensor) -> None:
        """Store (name -> embedding) rows so ``set_vocabulary`` can use them without a text encoder."""
        if len(class_names) != embeddings.shape[0]:
            raise ValueError(f"{len(class_names)} names for {embeddings.shape[0]} embeddings")
        for name, row in zip(class_names, embeddings.detach().float().cpu(), strict=False):
            self._table[name] = row

    def set_vocabulary(self, class_names: Sequence[str], embeddings: torch.Tensor | None = None) -> None:
        """Switch the class list (e.g. to a cross-dataset vocabulary, paper Table 7).

        Names already known (stored in the checkpoint or added) need no encoder; others are encoded with the
        text-only CLIP tower from the checkpoint's ``text_encoder`` entry.

        Args:
            class_names: T names.
            embeddings: Optional (T, C) embeddings to use directly.
        """
        from ovcore.text import check_vocabulary

        names = check_vocabulary(class_names)  # empty, blank or repeated names: ValueError naming them
        if embeddings is not None:
            self.add_embeddings(names, embeddings)
        missing = [n for n in dict.fromkeys(names) if n not in self._table]
        if missing:
            self.add_embeddings(missing, self._encode(missing))
        dev = self.logit_scale.device
        self.text_embeddings = F.normalize(torch.stack([self._table[n] for n in names]), dim=-1).to(dev)
        seen = set(self.seen_class_names)
        self.seen_mask = torch.tensor([n in seen for n in names], dtype=torch.bool, device=dev)
        self.class_names = names

    def _encode(self, names: list[str]) -> torch.Tensor:
        spec = self._text_encoder_spec
        if not spec:
            raise RuntimeError(
                f"no text embeddings for {names[:5]} and the checkpoint has no text encoder: pass embeddings= or "
                "export the checkpoint with include_text_tower=True"
            )
        from ovcore.clip import get_tokenizer
        from ovcore.text import get_templates

        from .text import TextTower, class_embeddings, read_text_weights

        if not self._text_tower_box:
            state = spec.get("state_dict")
            if state is None and spec.get("pretrained") is None:
                raise RuntimeError("the checkpoint's teacher was randomly initialised and holds no text weights")
            if state is None:
                # Read only the text weights of the CLIP checkpoint (the image tower is never built).
                from ovcore.clip import resolve_pretrained

                path = spec["pretrained"]
                if not Path(str(path)).is_file():
                    path = resolve_pretrained(spec["model_name"], spec["pretrained"], spec.get("cache_dir"))
                state = read_text_weights(path)
            tower = TextTower(spec["model_name"], state, quick_gelu=bool(spec.get("quick_gelu", False)))
            self._text_tower_box.append(tower)
        templates = spec.get("templates") or get_templates(self.cfg.teacher.templates)
        return class_embeddings(
            self._text_tower_box[0],
            get_tokenizer(spec["model_name"]),
            names,
            templates,
            model_name=spec["model_name"],
            weights=spec.get("pretrained"),
            cache_dir=self.cfg.teacher.text_cache_dir,
            device="cpu",
        )

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, mode: str | None = None) -> torch.Tensor:
        """Per-class scores at the input size.

        Args:
            images: uint8 (B, 3, H, W) (or float already normalised with the student's mean/std).
            mode: "whole" or "slide" (default ``cfg.test_mode``).

        Returns:
            (B, T, H, W) logits.
        """
        if self.text_embeddings.shape[0] == 0:
            raise RuntimeError("no vocabulary: call set_vocabulary(class_names) first")
        return student_scores(
            self.student,
            images,
            mean=self.mean,
            std=self.std,
            text=self.text_embeddings,
            alpha=self.logit_scale,
            seen_mask=self.seen_mask,
            cfg=self.cfg,
            mode=mode,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`predict`."""
        return self.predict(images)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(
        cls, source: str | os.PathLike | dict[str, Any], *, map_location: str | torch.device = "cpu"
    ) -> ZeroShotSegmenter:
        """Build from ``CLIPZSS.export_inference_state_dict()`` (a dict, or a file written with ``torch.save``).

        Args:
            source: The payload or its path.
            map_location: Device of the returned model.
        """
        payload = source if isinstance(source, dict) else _read_inference_file(source)
        where = "the payload" if isinstance(source, dict) else str(source)
        fmt = payload.get("format") if isinstance(payload, dict) else None
        if fmt != INFERENCE_FORMAT:
            raise ValueError(
                f"{where} is not a CLIP-ZSS inference checkpoint (format {fmt!r}); give the clipzss_inference.pt "
                "that clipzss-train writes next to its training checkpoints (or export_inference_state_dict())"
            )
        cfg = config_from_dict(payload["config"])
        model = cls(
            cfg,
            int(payload["embed_dim"]),
            logit_scale=float(payload["logit_scale"]),
            seen_class_names=payload["seen_class_names"],
            text_encoder=payload.get("text_encoder"),
        )
        model.student.load_state_dict(payload["student"])
        model.add_embeddings(payload["class_names"], payload["text_embeddings"])
        model.set_vocabulary(payload["class_names"])
        return model.to(map_location).eval()


def _read_inference_file(path: str | os.PathLike) -> Any:
    """Read an inference checkpoint with the safe loader (``ovcore.safe_load``, through ``load_checkpoint``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a refused, truncated, corrupted or foreign file, explained in one sentence that names it (never
            torch's advice to load it unsafely).
    """
    from ovcore.train.checkpoint import load_checkpoint

    return load_checkpoint(path)


def slide_stride(crop: int) -> int:
    """ZegCLIP's stride 426 for a 512 crop, scaled to other crops."""
    return max(1, round(crop * 426 / 512))


def student_scores(
    student: nn.Module,
    images: torch.Tensor,
    *,
    mean: torch.Tensor,
    std: torch.Tensor,
    text: torch.Tensor,
    alpha: torch.Tensor | float,
    seen_mask: torch.Tensor | None,
    cfg: CLIPZSSConfig,
    mode: str | None = None,
) -> torch.Tensor:
    """Inference shared by the training wrapper and :class:`ZeroShotSegmenter`: student -> text logits at input size.

    Args:
        student: The segmenter emitting CLIP-space features.
        images: uint8 (B, 3, H, W) (or float already normalised with ``mean``/``std``).
        mean, std: The student's normalisation.
        text: (T, C) text embeddings.
        alpha: Logit scale of Eq. 7.
        seen_mask: (T,) bool mask of seen classes for the calibration, or None.
        cfg: The model config (calibration, feature normalisation, crop size, test mode).
        mode: "whole" or "slide" (default ``cfg.test_mode``).
    """

    def logits(x: torch.Tensor) -> torch.Tensor:
        out = text_logits(
            student(x),
            text,
            alpha,
            seen_mask=seen_mask,
            calibration=cfg.seen_calibration,
            normalize_features=cfg.loss.normalize_features,
        )
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    x = normalize_images(images.to(mean.device), mean, std)
    mode = mode or cfg.test_mode  # spec §7.7: "slide" (ZegCLIP) by default
    if mode == "whole":
        return logits(x)
    if mode == "slide":
        return sliding_window(logits, x, text.shape[0], cfg.crop_size, slide_stride(cfg.crop_size))
    raise ValueError(f"unknown test mode {mode!r} (expected 'whole' or 'slide')")
