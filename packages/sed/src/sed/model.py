"""The SED meta-architecture: normalisation, warp to the network size, cost map, decoder, losses and predict()."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ovcore.costmap import cost_map
from ovcore.method import Prediction
from ovcore.text import check_vocabulary, get_templates
from ovcore.train.config import OptimConfig
from ovcore.train.optim import NORM_TYPES, add_rules
from sed.config import SEDConfig
from sed.decoder import Aggregator
from sed.encoder import SEDEncoder
from sed.losses import sed_bce_loss

__all__ = ["SED", "NORM_TYPES", "LOSS_NAMES"]

LOSS_NAMES = ("loss_final", "loss_aux0", "loss_aux1", "loss_aux2")
_SKIP_FEATURES = ("res4", "res3", "res2")


def _resize_back(probs: torch.Tensor, size: tuple[int, int], rejected: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (B, T, h, w) resized to `size` and their arg-max labels.

    Probabilities (not logits) are resized, as detectron2's sem_seg_postprocess. With CER (`rejected`) most rows
    are exactly 0 and stay 0 through a bilinear resize, so only the rows that are not all zero are resized (at an
    ADE-847 vocabulary this is most of the time and memory of the step) and the labels are taken among them: the
    first maximum among the nonzero rows is the arg-max of the whole column, and an all-zero column gives class 0,
    as ``argmax`` does.
    """
    if not rejected:
        out = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
        return out, out.argmax(1)
    out = probs.new_zeros(probs.shape[0], probs.shape[1], *size)
    labels = torch.empty((probs.shape[0], *size), dtype=torch.long, device=probs.device)
    for b in range(probs.shape[0]):
        ids = (probs[b].flatten(1).amax(1) > 0).nonzero()[:, 0]
        if ids.numel() == 0:
            labels[b] = 0
            continue
        part = F.interpolate(probs[b : b + 1, ids], size=size, mode="bilinear", align_corners=False)[0]
        out[b, ids] = part
        best, arg = part.max(0)
        labels[b] = torch.where(best > 0, ids[arg], 0)
    return out, labels


class SED(nn.Module):
    """SED: hierarchical CLIP encoder -> cosine cost map -> gradual fusion decoder (+ category early rejection).

    Args:
        cfg: the preset configuration.
        clip_model: an open_clip ConvNeXt CLIP (`ovcore.clip.create_clip`).

    Attributes:
        encoder: `SEDEncoder` (state-dict prefix ``encoder.clip.``, the official ``clip_model.``).
        decoder: `Aggregator` (prefix ``decoder.``, the official ``transformer.``).
        text_embeddings: non-persistent buffer (T, P, Dt) of the current vocabulary (moves with ``.to()``, is not in
            the state dict, as in the official code).
        class_names: the current vocabulary.
    """

    def __init__(self, cfg: SEDConfig, clip_model: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SEDEncoder(clip_model, cfg.clip_model)
        c2, c3, c4, _ = self.encoder.channels
        self.decoder = Aggregator(
            num_templates=cfg.num_templates,
            hidden_dim=cfg.hidden_dim,
            decoder_dims=cfg.decoder_dims,
            guidance_dims=(c4, c3, c2),
            guidance_proj_dims=cfg.guidance_proj_dims,
            num_heads=cfg.num_heads,
            kernel_sizes=cfg.kernel_sizes,
            pooling_train=cfg.pooling_train,
            pooling_eval=cfg.pooling_eval,
            layer_scale_init=cfg.layer_scale_init,
        )
        self.register_buffer("pixel_mean", torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.pixel_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer(
            "text_embeddings", torch.empty(0, cfg.num_templates, self.encoder.embed_dim), persistent=False
        )
        self.class_names: list[str] = []
        self.weights_id: str | None = None
        """Identity of the CLIP text weights (tag or checkpoint) for the on-disk embedding cache; None = no cache."""
        self.cache_dir: str | None = None
        self._vocab_from_text = False
        self.encoder_bf16 = False
        """Inference only: run the image encoder under bf16 autocast (AMX / AVX512-BF16 CPUs, GPUs); about 3x faster
        on such CPUs, probabilities change by ~1e-2 (benchmarks/RESULTS.md, "SED end to end"). Off by default."""
        # (templates, class name) -> (P, Dt): a class's embeddings depend on its own name only, so a new vocabulary
        # encodes just the names this model has not embedded yet (adding one class encodes one class).
        self._vocab_memory: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}
        self._vocab_stacks: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}

    # ------------------------------------------------------------------------------------------- vocabulary
    def resolve_templates(self, templates: str | Sequence[str] | None = None) -> list[str]:
        """Template list for a set name / explicit list (default: the preset's), checked against P."""
        spec = self.cfg.templates if templates is None else templates
        temps = get_templates(spec) if isinstance(spec, str) else list(spec)
        if len(temps) != self.cfg.num_templates:
            raise ValueError(
                f"the SED decoder is built for P={self.cfg.num_templates} templates (conv1 and the cost-guidance "
                f"chain take P channels) but the template set {spec if isinstance(spec, str) else 'given'!r} has "
                f"{len(temps)}; use a set of {self.cfg.num_templates} templates or build the model with "
                f"num_templates={len(temps)}"
            )
        return temps

    def set_vocabulary(self, class_names: Sequence[str], templates: str | Sequence[str] | None = None) -> torch.Tensor:
        """Embed `class_names` with the frozen text tower and make them the current vocabulary.

        Embeddings are cached in memory per (templates, class name), so only names not seen before are encoded, and,
        when the weights have an identity (`weights_id`), on disk through `ovcore.text.cached_encode_vocabulary`.

        Args:
            class_names: T names; ``", "`` separates synonyms.
            templates: template set name or list (default: the preset's 80 ImageNet templates).

        Returns:
            the (T, P, Dt) embeddings now in `text_embeddings`.
        """
        names = check_vocabulary([str(n) for n in class_names])  # empty, blank or repeated names: ValueError
        temps = self.resolve_templates(templates)
        key = tuple(temps)
        missing = [name for name in names if (key, name) not in self._vocab_memory]
        if missing:
            # Normal (not inference-mode) tensors even when called under inference_mode (e.g. from predict):
            # the same embeddings are later used by training forwards, which save them for backward.
            with torch.inference_mode(False), torch.no_grad():
                new = self.encoder.encode_vocabulary(
                    missing, temps, weights_id=self.weights_id, cache_dir=self.cache_dir
                )
            for name, emb in zip(missing, new.detach(), strict=True):
                self._vocab_memory[(key, name)] = emb
        emb = self._vocab_stacks.get((key, tuple(names)))
        if emb is None or missing:
            with torch.inference_mode(False):
                emb = torch.stack([self._vocab_memory[(key, name)] for name in names])
            self._vocab_stacks = {(key, tuple(names)): emb}  # setting the current vocabulary again is free
        self._set_embeddings(emb, names)
        self._vocab_from_text = True
        return self.text_embeddings

    def set_text_embeddings(self, embeddings: torch.Tensor, class_names: Sequence[str] | None = None) -> None:
        """Use precomputed (T, P, Dt) embeddings as the vocabulary (e.g. from another process or a test)."""
        p, d = self.cfg.num_templates, self.encoder.embed_dim
        if embeddings.dim() != 3 or tuple(embeddings.shape[1:]) != (p, d):
            raise ValueError(f"text embeddings must be (T, {p}, {d}), got {tuple(embeddings.shape)}")
        names = (
            [str(n) for n in class_names]
            if class_names is not None
            else [f"class_{i}" for i in range(embeddings.shape[0])]
        )
        if len(names) != embeddings.shape[0]:
            raise ValueError(f"{len(names)} class names for {embeddings.shape[0]} embeddings")
        check_vocabulary(names)
        self._set_embeddings(embeddings, names)
        self._vocab_from_text = False

    def _set_embeddings(self, emb: torch.Tensor, names: list[str]) -> None:
        with torch.inference_mode(False):
            emb = emb.detach().to(self.pixel_mean.device, torch.float32)
            if emb.is_inference():
                emb = emb.clone()
        self.text_embeddings = emb
        self.class_names = names

    def _default_vocabulary(self) -> list[str]:
        vocab = self.cfg.vocabulary
        if isinstance(vocab, str):
            from ovcore.data import get_class_names  # deferred: the data package is only needed here

            return get_class_names(vocab)
        return list(vocab)

    def ensure_vocabulary(self) -> None:
        """Encode the preset's default vocabulary if none is set yet."""
        if self.text_embeddings.shape[0] == 0:
            self.set_vocabulary(self.class_names or self._default_vocabulary())

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """As `nn.Module.load_state_dict`; text embeddings derived from the old text tower are dropped and
        re-encoded lazily from the loaded weights (the official code computes them from the loaded CLIP too)."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._vocab_memory.clear()
        self._vocab_stacks.clear()
        if self._vocab_from_text:
            self.text_embeddings = self.text_embeddings.new_empty(0, *self.text_embeddings.shape[1:])
        return result

    # ------------------------------------------------------------------------------------------- Hub layout
    def pretrained_info(self) -> tuple[str, str, dict[str, Any]]:
        """``("sed", preset, config dict)`` for ``ovcore.hub`` (the config rebuilds this model exactly)."""
        return "sed", self.cfg.name, self.cfg.to_dict()

    def save_pretrained(self, folder: str | os.PathLike, metrics: dict[str, Any] | None = None, **card: Any) -> Path:
        """Write the Hub layout (config.json, model.safetensors, README.md) that ``sed.create_sed(folder)`` and
        ``create_sed("hf-hub:org/repo")`` load; ``metrics`` (``{benchmark: mIoU}``) go into the model card.

        Args:
            folder: Output folder.
            metrics: Figures these weights were evaluated at.
            **card: ``extra_card`` / ``metrics_source`` / ``repo_id`` of ``ovcore.hub.save_pretrained``.
        """
        from ovcore.hub import save_model

        return save_model(self, folder, metrics=metrics, **card)

    # ------------------------------------------------------------------------------------------- forward
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """0..255 RGB (uint8 or float) (B, 3, H, W) -> CLIP-normalised float warped to input_size x input_size."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = (images.to(self.pixel_mean.dtype) - self.pixel_mean) / self.pixel_std
        size = (self.cfg.input_size, self.cfg.input_size)
        if tuple(x.shape[-2:]) != size:
            # Official: the normalised image is warped to 768x768 (aspect ratio not kept), bilinear, no antialias.
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Normalised images -> (cost map (B, P, T, h, w), detached skip features [res4, res3, res2])."""
        self.ensure_vocabulary()
        feats, dense = self.encoder(x)
        cost = cost_map(dense, self.text_embeddings)
        # Official: the skip features are clone().detach()-ed, so the encoder learns only through the cost map.
        return cost, [feats[name].detach() for name in _SKIP_FEATURES]

    def _inference_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`features` for `predict`: the encoder under bf16 autocast when `encoder_bf16` is set (fp32 outputs)."""
        if not self.encoder_bf16:
            return self.features(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            feats, dense = self.encoder(x)
        return cost_map(dense.float(), self.text_embeddings), [feats[name].float() for name in _SKIP_FEATURES]

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Normalised images -> (final logits (B, T, S/4, S/4), [aux0, aux1, aux2] logits)."""
        cost, skips = self.features(x)
        return self.decoder(cost, skips)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training step: ``{"image": (B,3,H,W) 0..255, "label": int64 (B,H,W)}`` -> named scalar losses."""
        if "image" not in batch or "label" not in batch:
            raise ValueError(f"batch must hold 'image' and 'label', got keys {sorted(batch)}")
        images = batch["image"].to(self.pixel_mean.device)
        labels = batch["label"].to(self.pixel_mean.device).long()
        logits, aux = self.forward_logits(self.preprocess(images))
        kw = dict(ignore_index=self.cfg.ignore_index, ignore_mode=self.cfg.loss_ignore)
        outs = [logits, *aux]
        return {name: sed_bce_loss(o, labels, **kw) for name, o in zip(LOSS_NAMES, outs, strict=True)}

    # ------------------------------------------------------------------------------------------- inference
    def _test_resize(self, images: torch.Tensor) -> torch.Tensor:
        """Official test mapper: short side 640 (long side <= 2560), PIL bilinear on the uint8 image."""
        short = self.cfg.test_short_side
        if short is None:
            return images
        from ovcore.data.transforms import functional as TF  # deferred: PIL resize helpers of the data package

        h, w = images.shape[-2:]
        size = TF.shortest_edge_size(h, w, short, self.cfg.test_max_size)
        if tuple(size) == (h, w):
            return images
        if images.dtype != torch.uint8:
            images = images.round().clamp(0, 255).to(torch.uint8)
        device = images.device
        return torch.stack([TF.resize_image_pil(img.cpu(), size) for img in images]).to(device)

    def predict(
        self,
        images: Any,
        class_names: Sequence[str] | None = None,
        *,
        k: int | None = None,
        templates: str | Sequence[str] | None = None,
    ) -> Prediction:
        """Official test pipeline: short side 640, normalise, warp to input_size, decoder, sigmoid, resize back.

        Args:
            images: RGB images of one size: a uint8 or 0..255 float tensor (B, 3, H, W) or (3, H, W), or PIL images,
                paths, numpy arrays or a list of them (``ovcore.data.images.as_image_batch``).
            class_names: switch to this vocabulary first (embeddings are cached); default the current one.
            k: category early rejection top-k; None = the preset's `cer_topk` (None = plain decoder).
            templates: template set for `class_names`.

        Returns:
            A :class:`~ovcore.method.Prediction`: sigmoid ``probs`` (B, T, H, W) (0 for rejected classes), arg-max
            ``labels`` (B, H, W), ``class_names`` and per-image ``stats`` ``{"kept": [T1, T2, T3], "num_classes": T}``
            (classes kept before each decoder layer; all T without CER).
        """
        from ovcore.data.images import as_image_batch  # deferred: the data package is only needed here

        images = as_image_batch(images)
        if class_names is not None:
            self.set_vocabulary(class_names, templates)
        self.ensure_vocabulary()
        k = self.cfg.cer_topk if k is None else k
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self._predict(images, k)
        finally:
            self.train(was_training)

    def _predict(self, images: torch.Tensor, k: int | None) -> Prediction:
        h, w = images.shape[-2:]
        x = self.preprocess(self._test_resize(images.to(self.pixel_mean.device)))
        cost, skips = self._inference_features(x)
        t = cost.shape[2]
        if k is not None:
            probs, batch_stats = self.decoder.forward_cer(cost, skips, k)
            kept = [list(map(int, row)) for row in batch_stats["kept"]]
        else:
            probs = self.decoder.infer(cost, skips)[0].sigmoid_()
            kept = [[t, t, t] for _ in range(cost.shape[0])]
        out, labels = _resize_back(probs, (h, w), rejected=k is not None)
        stats = [{"kept": row, "num_classes": t} for row in kept]
        return Prediction(out, labels, list(self.class_names), stats)

    def predict_probs(self, images: Any, k: int | None = None) -> torch.Tensor:
        """`predict(images, k=k).probs`: the (B, T, H, W) score function of `ovcore.evaluate`."""
        return self.predict(images, k=k).probs

    # ------------------------------------------------------------------------------------------- optimiser
    def default_optim(self, base: OptimConfig) -> OptimConfig:
        """The official recipe (SED paper, Sec. 4.2; package README, "Training") as rules of the engine's grouping.

        ``ovcore.train.build_optimizer`` groups with the returned config: CLIP image-tower parameters (``encoder.*``)
        get ``lr x clip_lr_multiplier`` (0.01); parameters of torch norm layers get ``base.weight_decay_norm`` (0 in
        the recipe) while everything else, including the decoder ConvNeXt blocks' hand-written LayerNorm, layer
        scales and biases, gets ``base.weight_decay`` (detectron2's WEIGHT_DECAY_NORM rule); the frozen text tower
        is not trainable, so it is in no group.

        Args:
            base: The run's optimizer options (its own lr_multipliers take precedence on the same pattern).
        """
        return add_rules(base, lr_multipliers={"encoder.*": self.cfg.clip_lr_multiplier})
