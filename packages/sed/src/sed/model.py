"""The SED meta-architecture: normalisation, warp to the network size, cost map, decoder, losses and predict()."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ovcore.costmap import cost_map
from ovcore.text import check_vocabulary, get_templates
from ovcore.train.optim import NORM_TYPES, named_trainable_parameters
from sed.config import SEDConfig
from sed.decoder import Aggregator
from sed.encoder import SEDEncoder
from sed.losses import sed_bce_loss

__all__ = ["SED", "NORM_TYPES", "LOSS_NAMES"]

LOSS_NAMES = ("loss_final", "loss_aux0", "loss_aux1", "loss_aux2")
_SKIP_FEATURES = ("res4", "res3", "res2")


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
        self._vocab_memory: dict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = {}

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

        Embeddings are cached in memory per (names, templates) and, when the weights have an identity
        (`weights_id`), on disk through `ovcore.text.cached_encode_vocabulary`.

        Args:
            class_names: T names; ``", "`` separates synonyms.
            templates: template set name or list (default: the preset's 80 ImageNet templates).

        Returns:
            the (T, P, Dt) embeddings now in `text_embeddings`.
        """
        names = check_vocabulary([str(n) for n in class_names])  # empty, blank or repeated names: ValueError
        temps = self.resolve_templates(templates)
        key = (tuple(names), tuple(temps))
        emb = self._vocab_memory.get(key)
        if emb is None:
            # Normal (not inference-mode) tensors even when called under inference_mode (e.g. from predict):
            # the same embeddings are later used by training forwards, which save them for backward.
            with torch.inference_mode(False), torch.no_grad():
                emb = self.encoder.encode_vocabulary(names, temps, weights_id=self.weights_id, cache_dir=self.cache_dir)
            self._vocab_memory[key] = emb.detach()
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
        if self._vocab_from_text:
            self.text_embeddings = self.text_embeddings.new_empty(0, *self.text_embeddings.shape[1:])
        return result

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
        images: torch.Tensor,
        class_names: Sequence[str] | None = None,
        k: int | None = None,
        *,
        templates: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Official test pipeline: short side 640, normalise, warp to input_size, decoder, sigmoid, resize back.

        Args:
            images: uint8 RGB (B, 3, H, W) (0..255 floats are accepted).
            class_names: switch to this vocabulary first (embeddings are cached); default the current one.
            k: category early rejection top-k; None = the preset's `cer_topk` (None = plain decoder).
            templates: template set for `class_names`.

        Returns:
            ``{"probs": (B, T, H, W) sigmoid probabilities (0 for rejected classes), "labels": int64 (B, H, W),
            "stats": {"kept": [[T1, T2, T3] per image], "num_classes": T}}``.
        """
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

    def _predict(self, images: torch.Tensor, k: int | None) -> dict[str, Any]:
        h, w = images.shape[-2:]
        x = self.preprocess(self._test_resize(images.to(self.pixel_mean.device)))
        cost, skips = self.features(x)
        t = cost.shape[2]
        if k is not None:
            probs, stats = self.decoder.forward_cer(cost, skips, k)
        else:
            probs = self.decoder.infer(cost, skips)[0].sigmoid_()
            stats = {"kept": [[t, t, t] for _ in range(cost.shape[0])]}
        stats["num_classes"] = t
        # Probabilities (not logits) are resized back to the input size, as detectron2's sem_seg_postprocess.
        out = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        return {"probs": out, "labels": out.argmax(1), "stats": stats}

    def predict_probs(self, images: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """`predict(images, k=k)["probs"]`: the (B, T, H, W) score function of `ovcore.evaluate`."""
        return self.predict(images, k=k)["probs"]

    # ------------------------------------------------------------------------------------------- optimiser
    def param_groups_spec(self) -> list[dict[str, Any]]:
        """Names of the trainable parameters per optimiser group (no tensors), see `param_groups`."""
        groups = self._group_params()
        return [
            {"name": g, "lr_mult": m, "norm": n, "param_names": [p for p, _ in items]}
            for (g, m, n), items in groups.items()
        ]

    def _group_params(self) -> dict[tuple[str, float, bool], list[tuple[str, nn.Parameter]]]:
        groups: dict[tuple[str, float, bool], list[tuple[str, nn.Parameter]]] = {}
        for name, param, module in named_trainable_parameters(self):
            is_clip = name.startswith("encoder.")
            # detectron2's WEIGHT_DECAY_NORM applies to instances of the torch norm classes, not to hand-written
            # norms such as the decoder ConvNeXt block's LayerNorm (package README, "Training").
            is_norm = isinstance(module, NORM_TYPES)
            key = ("clip" if is_clip else "decoder") + ("_norm" if is_norm else "")
            mult = self.cfg.clip_lr_multiplier if is_clip else 1.0
            groups.setdefault((key, mult, is_norm), []).append((name, param))
        return groups

    def param_groups(
        self,
        base_lr: Any = 2e-4,
        weight_decay: float | None = None,
        clip_multiplier: float | None = None,
        weight_decay_norm: float | None = None,
    ) -> list[dict[str, Any]]:
        """AdamW parameter groups of the official recipe (SED paper, Sec. 4.2; package README, "Training").

        CLIP image-tower parameters get ``lr x clip_multiplier`` (0.01), parameters of torch norm layers get
        ``weight_decay_norm`` (0), everything else ``weight_decay`` (1e-4), including the decoder ConvNeXt blocks'
        hand-written LayerNorm, layer scales and biases. The frozen text tower is left out.

        Args:
            base_lr: base learning rate, or an ``ovcore.train`` OptimConfig (its lr / weight_decay /
                weight_decay_norm are used).
            weight_decay: default 1e-4 (or the config's).
            clip_multiplier: default the preset's `clip_lr_multiplier` (0.01).
            weight_decay_norm: default 0.0 (or the config's).

        Returns:
            dicts with ``params``, ``param_names``, ``name``, ``lr``, ``lr_mult`` and ``weight_decay``.
        """
        if hasattr(base_lr, "lr"):  # an OptimConfig from the training engine
            cfg = base_lr
            base_lr = cfg.lr
            weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
            if weight_decay_norm is None:
                weight_decay_norm = getattr(cfg, "weight_decay_norm", 0.0)
        weight_decay = 1e-4 if weight_decay is None else weight_decay
        weight_decay_norm = 0.0 if weight_decay_norm is None else weight_decay_norm
        out = []
        for (name, mult, is_norm), items in self._group_params().items():
            if name.startswith("clip") and clip_multiplier is not None:
                mult = clip_multiplier
            out.append(
                {
                    "name": name,
                    "params": [p for _, p in items],
                    "param_names": [n for n, _ in items],
                    "lr": float(base_lr) * mult,
                    "lr_mult": mult,
                    "weight_decay": weight_decay_norm if is_norm else weight_decay,
                }
            )
        return out
