"""Inference: the student and the text embeddings only (paper Sec. 3.4). No CLIP image tower is built.

``logits = alpha * normalize(R) . T_all - gamma * [class is seen]`` (gamma = seen calibration, Sec. 4.2, reading (a)),
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

from ovcore.method import Prediction

from .config import CLIPZSSConfig, config_from_dict, config_to_dict
from .losses import classifier_logits
from .students import Student, student_config_for_crop

__all__ = [
    "INFERENCE_FORMAT",
    "ZeroShotSegmenter",
    "normalize_images",
    "predict_with_student",
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
        # Embeddings under other templates (set_vocabulary(..., templates=...)), encoded once per (templates, name).
        self._template_table: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}
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

    def set_vocabulary(self, class_names: Sequence[str], templates: str | Sequence[str] | None = None) -> None:
        """Switch the class list (e.g. to a cross-dataset vocabulary, paper Table 7).

        Names already known (stored in the checkpoint or added) need no encoder; others are encoded with the
        text-only CLIP tower from the checkpoint's ``text_encoder`` entry. Precomputed embeddings go through
        :meth:`set_text_embeddings` instead.

        Args:
            class_names: T names.
            templates: A template set name or list to encode every name with (through the text tower, once per
                templates and name); default the training templates, with the stored embeddings reused.

        Raises:
            ValueError: an empty, blank or repeated name.
            RuntimeError: a name must be encoded but the checkpoint has no text encoder.
        """
        from ovcore.text import check_vocabulary

        names = check_vocabulary(class_names)  # empty, blank or repeated names: ValueError naming them
        if templates is not None:
            temps = _template_list(templates)
            key = tuple(temps)
            missing = [n for n in dict.fromkeys(names) if (key, n) not in self._template_table]
            if missing:
                emb = self._encode(missing, temps).detach().float().cpu()
                self._template_table.update({(key, n): row for n, row in zip(missing, emb, strict=True)})
            self._use(names, torch.stack([self._template_table[(key, n)] for n in names]))
            return
        missing = [n for n in dict.fromkeys(names) if n not in self._table]
        if missing:
            self.add_embeddings(missing, self._encode(missing))
        self._use(names, torch.stack([self._table[n] for n in names]))

    def set_text_embeddings(self, embeddings: torch.Tensor, class_names: Sequence[str]) -> None:
        """Use precomputed (T, C) embeddings (e.g. from another CLIP run) as the vocabulary; they are also stored,
        so a later ``set_vocabulary`` with these names needs no encoder.

        Raises:
            ValueError: a name count that differs from T, or a bad name.
        """
        from ovcore.text import check_vocabulary

        names = check_vocabulary(class_names)
        self.add_embeddings(names, embeddings)
        self._use(names, torch.stack([self._table[n] for n in names]))

    def _use(self, names: list[str], embeddings: torch.Tensor) -> None:
        dev = self.logit_scale.device
        self.text_embeddings = F.normalize(embeddings.float(), dim=-1).to(dev)
        seen = set(self.seen_class_names)
        self.seen_mask = torch.tensor([n in seen for n in names], dtype=torch.bool, device=dev)
        self.class_names = names

    def _encode(self, names: list[str], templates: list[str] | None = None) -> torch.Tensor:
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
        templates = templates or spec.get("templates") or get_templates(self.cfg.teacher.templates)
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

    def predict(
        self,
        images: Any,
        class_names: Sequence[str] | None = None,
        *,
        mode: str | None = None,
        templates: str | Sequence[str] | None = None,
    ) -> Prediction:
        """Segment images with the student into the current (or the given) vocabulary.

        Args:
            images: RGB images of one size: a uint8 or 0..255 float tensor (B, 3, H, W) or (3, H, W), or PIL images,
                paths, numpy arrays or a list of them (``ovcore.data.images.as_image_batch``).
            class_names: Switch to this vocabulary first.
            mode: "whole" or "slide" (default ``cfg.test_mode``).
            templates: Template set for ``class_names``.

        Returns:
            A :class:`~ovcore.method.Prediction`: softmax ``probs`` (B, T, H, W) of the calibrated logits, arg-max
            ``labels``, ``class_names`` and per-image ``stats`` (``mode``, ``num_classes``, ``seen_calibration``).

        Raises:
            RuntimeError: no vocabulary set.
        """
        if class_names is not None:
            self.set_vocabulary(class_names, templates)
        if self.text_embeddings.shape[0] == 0:
            raise RuntimeError("no vocabulary: call set_vocabulary(class_names) first")
        return predict_with_student(
            self, images, text=self.text_embeddings, alpha=self.logit_scale, seen_mask=self.seen_mask, mode=mode
        )

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        """The inference model has no training step.

        Raises:
            RuntimeError: always; segment with ``predict`` and train the ``CLIPZSS`` wrapper
                (``clipzss.create_clipzss``).
        """
        raise RuntimeError(
            "ZeroShotSegmenter is inference-only (student + text embeddings, no teacher or losses): segment with "
            "model.predict(images); train the CLIPZSS wrapper from clipzss.create_clipzss(preset) instead"
        )

    def export_inference_state_dict(self) -> dict[str, Any]:
        """This model's checkpoint payload (the format of ``CLIPZSS.export_inference_state_dict``)."""
        names = list(self._table)
        return {
            "format": INFERENCE_FORMAT,
            "config": config_to_dict(self.cfg),
            "embed_dim": int(self.text_embeddings.shape[-1]),
            "student": {k: v.detach().cpu() for k, v in self.student.state_dict().items()},
            "logit_scale": float(self.logit_scale),
            "class_names": names,
            "text_embeddings": torch.stack([self._table[n] for n in names]).float().cpu(),
            "seen_class_names": list(self.seen_class_names),
            "text_encoder": self._text_encoder_spec,
        }

    # ------------------------------------------------------------------ Hub layout

    preset: str | None = None
    """The preset the student was trained from (recorded in the Hub layout's config.json; None when unknown)."""

    def pretrained_info(self) -> tuple[str, str, dict[str, Any]]:
        """``("clipzss", preset, config)`` for ``ovcore.hub``: the training config and everything of the inference
        payload that is not a tensor (the tensors are :meth:`pretrained_state_dict`)."""
        return "clipzss", self.preset or "clipzss_custom", _hub_config(self)

    def pretrained_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of the Hub layout: ``student.*``, the stored ``text_embeddings`` table and, when the model
        can encode new names from them, the CLIP text weights as ``text_encoder.*``."""
        payload = self.export_inference_state_dict()
        state = {f"student.{k}": v for k, v in payload["student"].items()}
        state["text_embeddings"] = payload["text_embeddings"]
        text = _portable_text_weights(payload["text_encoder"])
        state.update({f"text_encoder.{k}": v.detach().cpu() for k, v in (text or {}).items()})
        return state

    def save_pretrained(self, folder: str | os.PathLike, metrics: dict[str, Any] | None = None, **card: Any) -> Path:
        """Write the Hub layout (config.json, model.safetensors, README.md) that ``clipzss.create_segmenter(folder)``
        and ``create_segmenter("hf-hub:org/repo")`` load.

        Args:
            folder: Output folder.
            metrics: ``{benchmark: mIoU}`` these weights were evaluated at (shown in the model card).
            **card: ``extra_card`` / ``metrics_source`` / ``repo_id`` of ``ovcore.hub.save_pretrained``.
        """
        from ovcore.hub import save_model

        return save_model(self, folder, metrics=metrics, **card)

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike, *, map_location: str | torch.device = "cpu"
    ) -> ZeroShotSegmenter:
        """Load a folder written by :meth:`save_pretrained`, or ``hf-hub:org/repo[@revision]`` (``ovcore.hub``).

        Raises:
            ValueError: a bad or foreign pretrained source (the message names it).
            RuntimeError: an ``hf-hub:`` source that is offline and not in the Hugging Face cache.
        """
        from ovcore.hub import load_pretrained

        weights = load_pretrained(source, method="clipzss")
        model = cls.from_checkpoint(_payload_from_hub(weights.config, weights.state_dict, str(source)))
        model.preset = weights.preset
        vocabulary = weights.config.get("vocabulary")
        if vocabulary and vocabulary != model.class_names:
            model.set_vocabulary(vocabulary)
        return model.to(map_location).eval()

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
    mode = mode or cfg.test_mode  # the paper does not say: "slide" (ZegCLIP) by default
    if mode == "whole":
        return logits(x)
    if mode == "slide":
        return sliding_window(logits, x, text.shape[0], cfg.crop_size, slide_stride(cfg.crop_size))
    raise ValueError(f"unknown test mode {mode!r} (expected 'whole' or 'slide')")


def _template_list(templates: str | Sequence[str]) -> list[str]:
    from ovcore.text import get_templates

    return list(get_templates(templates)) if isinstance(templates, str) else [str(t) for t in templates]


def student_input(images: Any, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Any accepted images (``ovcore.data.images``: uint8, or float 0..255) -> the student's normalised input."""
    from ovcore.data.images import as_image_batch  # deferred: the data package is only needed here

    x = as_image_batch(images).to(mean.device)
    return (x.float() / 255.0 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def predict_with_student(
    model: nn.Module,
    images: Any,
    *,
    text: torch.Tensor,
    alpha: torch.Tensor | float,
    seen_mask: torch.Tensor | None,
    mode: str | None,
) -> Prediction:
    """The contract's ``predict`` of :class:`ZeroShotSegmenter` and of the training wrapper: the student in eval mode,
    no autograd, logits -> softmax probabilities.

    Args:
        model: Has ``student``, ``cfg``, ``class_names`` and the student's normalisation (``mean``/``std`` or
            ``student_mean``/``student_std``).
        images: Any accepted images.
        text: (T, C) text embeddings.
        alpha: Logit scale.
        seen_mask: (T,) seen classes for the calibration.
        mode: "whole" or "slide" (default ``cfg.test_mode``).
    """
    mean = getattr(model, "student_mean", None)
    std = getattr(model, "student_std", None)
    if mean is None:
        mean, std = model.mean, model.std
    cfg = model.cfg
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x = student_input(images, mean, std)
            logits = student_scores(
                model.student, x, mean=mean, std=std, text=text, alpha=alpha, seen_mask=seen_mask, cfg=cfg, mode=mode
            )
            probs = logits.softmax(dim=1)
    finally:
        model.train(was_training)
    stats = {"mode": mode or cfg.test_mode, "num_classes": int(text.shape[0]), "seen_calibration": cfg.seen_calibration}
    return Prediction(probs, probs.argmax(dim=1), list(model.class_names), [dict(stats) for _ in range(len(probs))])


# ------------------------------------------------------------------ Hub layout helpers

_HUB_KEYS = ("clipzss", "embed_dim", "logit_scale", "class_names", "seen_class_names", "text_encoder")


def _hub_config(model: ZeroShotSegmenter) -> dict[str, Any]:
    """The JSON half of the Hub layout: the inference payload without its tensors, plus the current vocabulary."""
    payload = model.export_inference_state_dict()
    # The text weights travel in model.safetensors; a cache folder is this machine's only.
    text = {k: v for k, v in (payload["text_encoder"] or {}).items() if k not in ("state_dict", "cache_dir")}
    return {
        "clipzss": payload["config"],
        "embed_dim": payload["embed_dim"],
        "logit_scale": payload["logit_scale"],
        "class_names": payload["class_names"],
        "seen_class_names": payload["seen_class_names"],
        "text_encoder": text or None,
        "vocabulary": list(model.class_names),
    }


def _portable_text_weights(spec: dict[str, Any] | None) -> dict[str, torch.Tensor] | None:
    """The text-tower weights to publish: the stored ones, or those of a local CLIP file (absent elsewhere)."""
    if not spec:
        return None
    if spec.get("state_dict") is not None:
        return spec["state_dict"]
    path = spec.get("pretrained")
    if path is not None and Path(str(path)).is_file():
        from .text import read_text_weights

        return read_text_weights(path)
    return None  # an open_clip tag: resolved through the open_clip cache where the weights are loaded


def _payload_from_hub(config: dict[str, Any], state: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    """Inverse of :func:`_hub_config` + ``pretrained_state_dict``: the payload of :meth:`from_checkpoint`."""
    missing = [k for k in _HUB_KEYS if k not in config]
    if missing or "text_embeddings" not in state:
        raise ValueError(
            f"{where}: not a CLIP-ZSS segmenter in the Hub layout (config.json lacks {missing}"
            f"{'' if 'text_embeddings' in state else ', model.safetensors lacks text_embeddings'}); "
            "write it with ZeroShotSegmenter.save_pretrained"
        )
    text = dict(config["text_encoder"]) if config["text_encoder"] else None
    tower = {k[len("text_encoder.") :]: v for k, v in state.items() if k.startswith("text_encoder.")}
    if text is not None and tower:
        text["state_dict"] = tower
    return {
        "format": INFERENCE_FORMAT,
        "config": config["clipzss"],
        "embed_dim": int(config["embed_dim"]),
        "student": {k[len("student.") :]: v for k, v in state.items() if k.startswith("student.")},
        "logit_scale": float(config["logit_scale"]),
        "class_names": list(config["class_names"]),
        "text_embeddings": state["text_embeddings"],
        "seen_class_names": list(config["seen_class_names"]),
        "text_encoder": text,
    }
