"""MaskCLIP (Zhou et al., ECCV 2022): dense CLIP image embeddings scored against prompt-ensembled text embeddings.

Nothing is trained. Per location ``p`` and class ``t``::

    score[t, p] = logit_scale * cos(F(p), E[t])        E[t] = normalize(mean over the 80 templates of E[t, template])

``F`` is the CLIP image tower run densely: for a ViT, the patch tokens with the last block's attention replaced by
its value embedding (``ovcore.clip.ViTCLIPEncoder(last_attention="value")``), then ``ln_post`` and ``proj``; for a
ConvNeXt, the CLIP image head applied at every location of the last stage (``ovcore.clip.ConvNeXtCLIPEncoder``).
Scores are averaged over sliding windows (when the preset uses them), up-sampled bilinearly to the input size and
turned into probabilities with a softmax over the classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn

from maskclip.config import INFERENCE_FIELDS, MaskCLIPConfig
from ovcore.clip import ConvNeXtCLIPEncoder, ViTCLIPEncoder, get_tokenizer, image_mean_std
from ovcore.method import Prediction
from ovcore.text import cached_encode_vocabulary, encode_vocabulary, get_templates

__all__ = ["MaskCLIP", "rescale_size", "window_boxes"]

# Windows are encoded in chunks of this many crops, so a large image does not hold every crop's tokens at once.
_WINDOW_CHUNK = 32


def rescale_size(height: int, width: int, short_side: int, max_size: int) -> tuple[int, int]:
    """mmseg's ``Resize(scale=(max_size, short_side), keep_ratio=True)``: the largest size, up or down, whose short
    side is at most ``short_side`` and long side at most ``max_size`` (rounded to the nearest pixel)."""
    scale = min(short_side / min(height, width), max_size / max(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def window_boxes(height: int, width: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the sliding windows that cover an image (mmseg's ``slide_inference`` grid).

    Windows are ``window`` square (clipped to the image when it is smaller), start every ``stride`` pixels, and the
    last one of each row / column is shifted back to end at the image border.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    wh, ww = min(window, height), min(window, width)
    rows = max(height - wh + stride - 1, 0) // stride + 1
    cols = max(width - ww + stride - 1, 0) // stride + 1
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * stride + wh, height), min(c * stride + ww, width)
            boxes.append((y1 - wh, y1, x1 - ww, x1))
    return boxes


class MaskCLIP(nn.Module):
    """Training-free dense CLIP segmentation (the ``ovcore.method.SegmentationModel`` interface).

    Args:
        cfg: The preset's configuration.
        clip_model: An open_clip CLIP whose image tower is a ViT (token pooling) or a timm ConvNeXt.
        weights_id: Identity of the CLIP weights for the on-disk text-embedding cache (``ovcore.text.weights_id_of``);
            None (random weights) always re-encodes.
        cache_dir: Text-embedding cache folder (default ``ovcore.text.default_cache_dir()``).

    Attributes:
        class_names: The current vocabulary.
        text_embeddings: (T, D) unit-norm prompt-ensembled class embeddings of ``class_names``.
        backbone: ``"vit"`` or ``"convnext"``.
    """

    def __init__(
        self,
        cfg: MaskCLIPConfig,
        clip_model: nn.Module,
        *,
        weights_id: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.clip = clip_model
        self.weights_id = weights_id
        self.cache_dir = cache_dir
        dense = self._dense_encoder(cfg, clip_model)
        object.__setattr__(self, "_dense", dense)  # shares clip.visual; not a second registration of its parameters
        self.backbone = "vit" if isinstance(dense, ViTCLIPEncoder) else "convnext"
        self.embed_dim = int(dense.embed_dim)
        mean, std = image_mean_std(clip_model)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("text_embeddings", torch.empty(0, self.embed_dim), persistent=False)
        self.class_names: list[str] = []
        self._vocab_memory: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}
        self._tokenizer: Any = None
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _dense_encoder(cfg: MaskCLIPConfig, clip_model: nn.Module) -> nn.Module:
        visual = getattr(clip_model, "visual", None)
        if isinstance(visual, VisionTransformer):
            return ViTCLIPEncoder(clip_model, pos_interpolation=cfg.pos_interpolation, last_attention="value")
        try:
            return ConvNeXtCLIPEncoder(clip_model)
        except ValueError as err:
            raise ValueError(
                f"MaskCLIP needs an open_clip ViT or timm ConvNeXt image tower; {cfg.clip_model!r} has "
                f"{type(visual).__name__} ({err})"
            ) from err

    # ------------------------------------------------------------------------------------------- contract
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """MaskCLIP has nothing to train.

        Raises:
            RuntimeError: always; use ``predict`` (or ``ovcore.method.get_method("maskclip").trainable``).
        """
        raise RuntimeError(
            "MaskCLIP is training-free: it has no training forward or losses. Use model.predict(images) to segment; "
            "its MethodSpec reports trainable=False."
        )

    # ------------------------------------------------------------------------------------------- Hub layout
    def pretrained_info(self) -> tuple[str, str, dict[str, Any]]:
        """``("maskclip", preset, config dict)`` for ``ovcore.hub`` (the config rebuilds this model exactly)."""
        return "maskclip", self.cfg.name, self.cfg.to_dict()

    def save_pretrained(self, folder: str | os.PathLike, metrics: dict[str, Any] | None = None, **card: Any) -> Any:
        """Write the Hub layout (config.json, model.safetensors with the CLIP weights, README.md) that
        ``maskclip.create_maskclip(folder)`` and ``create_maskclip("hf-hub:org/repo")`` load.

        Args:
            folder: Output folder.
            metrics: ``{benchmark: mIoU}`` these weights were evaluated at (shown in the model card).
            **card: ``extra_card`` / ``metrics_source`` / ``repo_id`` of ``ovcore.hub.save_pretrained``.

        Returns:
            The folder (a ``pathlib.Path``).
        """
        from ovcore.hub import save_model

        return save_model(self, folder, metrics=metrics, **card)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer(self.cfg.clip_model)
        return self._tokenizer

    def resolve_templates(self, templates: str | Sequence[str] | None = None) -> list[str]:
        """The template list of a set name or an explicit list (default: the preset's set)."""
        spec = self.cfg.templates if templates is None else templates
        return get_templates(spec) if isinstance(spec, str) else [str(t) for t in spec]

    def set_vocabulary(self, class_names: Sequence[str], templates: str | Sequence[str] | None = None) -> torch.Tensor:
        """Embed ``class_names`` with the CLIP text tower and make them the current vocabulary.

        Each class embedding is the normalised mean of its per-template embeddings (CLIP's prompt ensembling; a
        name with ``", "``-separated synonyms averages them per template first). Embeddings are cached in memory per
        (names, templates) and, when the weights have an identity, on disk through ``ovcore.text``.

        Args:
            class_names: T names.
            templates: A template set name or list (default: the preset's 80 ImageNet templates).

        Returns:
            The (T, D) embeddings now in ``text_embeddings``.

        Raises:
            ValueError: empty vocabulary, a bad name or a bad template.
        """
        if isinstance(class_names, str):
            raise ValueError("class_names must be a sequence of names, not a single string")
        names = [str(n) for n in class_names]
        if not names:
            raise ValueError("the vocabulary needs at least one class name")
        temps = self.resolve_templates(templates)
        key = (tuple(names), tuple(temps))
        emb = self._vocab_memory.get(key)
        if emb is None:
            emb = self._encode_vocabulary(names, temps)
            self._vocab_memory[key] = emb
        self.text_embeddings = emb.to(self.pixel_mean.device)
        self.class_names = names
        return self.text_embeddings

    def _encode_vocabulary(self, names: list[str], temps: list[str]) -> torch.Tensor:
        # Plain tensors even under an outer inference_mode (predict may be the first caller).
        with torch.inference_mode(False), torch.no_grad():
            if self.weights_id is None:
                per_template = encode_vocabulary(self.clip, self.tokenizer, names, temps)
            else:
                per_template = cached_encode_vocabulary(
                    self.clip,
                    self.tokenizer,
                    names,
                    temps,
                    model_name=self.cfg.clip_model,
                    weights_id=self.weights_id,
                    cache_dir=self.cache_dir,
                )
            return F.normalize(per_template.float().mean(dim=1), dim=-1)

    def ensure_vocabulary(self) -> None:
        """Encode the preset's default vocabulary if none is set yet."""
        if not self.class_names:
            self.set_vocabulary(self._default_vocabulary())

    def _default_vocabulary(self) -> list[str]:
        vocab = self.cfg.vocabulary
        if isinstance(vocab, str):
            from ovcore.data import get_class_names  # deferred: the data package is only needed here

            return get_class_names(vocab)
        return list(vocab)

    # ------------------------------------------------------------------------------------------- inference
    def preprocess(self, images: torch.Tensor, cfg: MaskCLIPConfig | None = None) -> torch.Tensor:
        """0..255 RGB (uint8 or float) (B, 3, H, W) -> CLIP-normalised float at the test size.

        Raises:
            ValueError: not a (B, 3, H, W) tensor.
        """
        cfg = cfg or self.cfg
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (B, 3, H, W) 0..255 RGB tensor, got {shape}")
        x = (images.to(self.pixel_mean.device, self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        if cfg.test_short_side is not None:
            size = rescale_size(x.shape[-2], x.shape[-1], cfg.test_short_side, cfg.test_max_size)
            if size != tuple(x.shape[-2:]):
                # mmseg's Resize is cv2 bilinear without antialiasing; this is its torch counterpart.
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def dense_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, h, w) -> (N, D, h/s, w/s) unit-norm dense CLIP embeddings (s: patch / 32)."""
        # Both encoders return (global or feature maps, dense); the dense map is what MaskCLIP scores.
        dense = self._dense(x)[1]
        return F.normalize(dense.float(), dim=1)

    def cosine_map(self, x: torch.Tensor, cfg: MaskCLIPConfig | None = None) -> torch.Tensor:
        """Normalised images (B, 3, h, w) -> (B, T, h, w) cosine similarities to the class embeddings, averaged over
        the sliding windows of ``cfg`` (the whole image in one pass when ``window_size`` is None)."""
        cfg = cfg or self.cfg
        self.ensure_vocabulary()
        b, _, h, w = x.shape
        if cfg.window_size is None:
            return self._window_cosines(x)
        boxes = window_boxes(h, w, cfg.window_size, cfg.window_stride)
        total = x.new_zeros(b, self.text_embeddings.shape[0], h, w)
        count = x.new_zeros(1, 1, h, w)
        crops = [(box, x[:, :, box[0] : box[1], box[2] : box[3]]) for box in boxes]
        for start in range(0, len(crops), max(1, _WINDOW_CHUNK // b)):
            chunk = crops[start : start + max(1, _WINDOW_CHUNK // b)]
            cos = self._window_cosines(torch.cat([c for _, c in chunk]))
            for i, ((y0, y1, x0, x1), _) in enumerate(chunk):
                total[:, :, y0:y1, x0:x1] += cos[i * b : (i + 1) * b]
                count[:, :, y0:y1, x0:x1] += 1
        return total / count

    def _window_cosines(self, crops: torch.Tensor) -> torch.Tensor:
        dense = self.dense_embeddings(crops)
        cos = torch.einsum("ndhw,td->nthw", dense, self.text_embeddings.to(dense.dtype))
        return F.interpolate(cos, size=crops.shape[-2:], mode="bilinear", align_corners=False)

    def logit_scale_value(self, cfg: MaskCLIPConfig | None = None) -> float:
        """The softmax temperature in force: the preset's ``logit_scale`` or, when None, the CLIP's own."""
        cfg = cfg or self.cfg
        if cfg.logit_scale is not None:
            return float(cfg.logit_scale)
        return float(self.clip.logit_scale.exp().clamp(max=100.0))

    def predict(
        self,
        images: Any,
        class_names: Sequence[str] | None = None,
        *,
        templates: str | Sequence[str] | None = None,
        **options: Any,
    ) -> Prediction:
        """Segment RGB images into the current (or the given) vocabulary.

        Args:
            images: RGB images of one size: a uint8 or 0..255 float tensor (B, 3, H, W) or (3, H, W), or PIL images,
                paths, numpy arrays or a list of them (``ovcore.data.images.as_image_batch``).
            class_names: Switch to this vocabulary first (embeddings are cached); default the current one.
            templates: Template set for ``class_names``.
            **options: One-call overrides of the test pipeline: ``test_short_side``, ``test_max_size``,
                ``window_size``, ``window_stride``, ``logit_scale``.

        Returns:
            A :class:`~ovcore.method.Prediction`: softmax ``probs`` (B, T, H, W) at the input size, arg-max
            ``labels`` (B, H, W), ``class_names`` and per-image ``stats`` (test size, window count).

        Raises:
            ValueError: bad images, an unknown option or a bad option value.
        """
        from ovcore.data.images import as_image_batch  # deferred: the data package is only needed here

        cfg = self._call_config(options)
        images = as_image_batch(images)
        if class_names is not None:
            self.set_vocabulary(class_names, templates)
        self.ensure_vocabulary()
        with torch.inference_mode():
            return self._predict(images, cfg)

    def _call_config(self, options: dict[str, Any]) -> MaskCLIPConfig:
        unknown = sorted(set(options) - set(INFERENCE_FIELDS))
        if unknown:
            raise ValueError(f"unknown MaskCLIP predict options {unknown}; known: {list(INFERENCE_FIELDS)}")
        return self.cfg.replace(**options) if options else self.cfg

    def _predict(self, images: torch.Tensor, cfg: MaskCLIPConfig) -> Prediction:
        h, w = images.shape[-2:]
        x = self.preprocess(images, cfg)
        cos = self.cosine_map(x, cfg)
        if tuple(cos.shape[-2:]) != (h, w):
            cos = F.interpolate(cos, size=(h, w), mode="bilinear", align_corners=False)
        probs = (cos * self.logit_scale_value(cfg)).softmax(dim=1)
        th, tw = x.shape[-2:]
        windows = 1 if cfg.window_size is None else len(window_boxes(th, tw, cfg.window_size, cfg.window_stride))
        stats = {"test_size": (th, tw), "windows": windows, "num_classes": len(self.class_names)}
        return Prediction(probs, probs.argmax(dim=1), list(self.class_names), [dict(stats) for _ in range(len(probs))])

    def predict_probs(self, images: torch.Tensor) -> torch.Tensor:
        """``predict(images).probs``: the (B, T, H, W) score function of ``ovcore.evaluate``."""
        return self.predict(images).probs

    def extra_repr(self) -> str:
        return f"preset={self.cfg.name!r}, backbone={self.backbone!r}, classes={len(self.class_names)}"
