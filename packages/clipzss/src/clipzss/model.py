"""The CLIP-ZSS training wrapper (paper Fig. 2): student + frozen CLIP teacher + GLM + PLM + synthesizer + losses.

Model contract (``ovcore.method.SegmentationModel``): ``model(batch)`` returns a dict of named scalar losses,
``model.predict(images)`` an ``ovcore.method.Prediction``, ``model.set_vocabulary(names, templates=None)`` switches the
class list, ``model.default_optim(optim_cfg)`` states the AdamW grouping as OptimConfig rules. The teacher lives
outside the module tree: it is in neither ``state_dict()`` nor ``parameters()`` (so neither checkpoints nor DDP nor
the optimizer see it), and ``.to()`` still moves it (``_apply`` override).
``export_inference_state_dict()`` writes what :class:`clipzss.segmenter.ZeroShotSegmenter` needs: the student and
the text embeddings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ovcore.method import Prediction
from ovcore.train.config import OptimConfig
from ovcore.train.optim import add_rules

from .config import CLIPZSSConfig, config_to_dict
from .glm import GlobalLearningModule
from .losses import IGNORE_LABEL, bce_prototype_loss, ce_loss, classifier_logits, nel_loss
from .pseudo_labels import PseudoLabeler, PseudoLabels, drop_absent_pseudo_ids
from .segmenter import (
    INFERENCE_FORMAT,
    ZeroShotSegmenter,
    _template_list,
    normalize_images,
    predict_with_student,
)
from .students import Student, student_config_for_crop
from .synthesizer import Synthesizer, label_centroids
from .teacher import CLIPTeacher

__all__ = ["CLIPZSS", "check_label_ids", "infer_pad_mask", "resolve_vocabulary", "seen_label_lut"]


def resolve_vocabulary(cfg: CLIPZSSConfig) -> tuple[list[str], list[int]]:
    """Class names (dataset order) and seen ids: from ``cfg.dataset`` via ovcore.data, else from the config.

    Raises:
        ValueError: no vocabulary, or seen ids out of range.
    """
    if cfg.dataset is not None:
        from ovcore.data import get_zeroshot_split

        split = get_zeroshot_split(cfg.dataset)
        names = list(cfg.class_names) or list(split.class_names)
        seen = list(cfg.seen_classes) or list(split.seen)
    else:
        names, seen = list(cfg.class_names), list(cfg.seen_classes)
    if not names:
        raise ValueError("CLIP-ZSS needs a vocabulary: set cfg.dataset or cfg.class_names / cfg.seen_classes")
    if not seen:
        raise ValueError("CLIP-ZSS needs at least one seen class (cfg.seen_classes)")
    if len(set(seen)) != len(seen) or min(seen) < 0 or max(seen) >= len(names):
        raise ValueError(f"seen_classes must be distinct ids in [0, {len(names)}), got {seen}")
    return names, seen


def seen_label_lut(seen_ids: Sequence[int], ignore_index: int = IGNORE_LABEL, size: int = 256) -> torch.Tensor:
    """ZegCLIP's label lookup table: dataset id ``seen_ids[i]`` -> ``i``, every other id -> ``ignore_index``.

    Args:
        seen_ids: Dataset ids of the seen classes (compact order).
        ignore_index: Ignore value of the compact labels (-1: no compact id can reach it).
        size: Table length (labels are < 256 for every zero-shot dataset; larger vocabularies need more).

    Raises:
        ValueError: a seen id outside the table, or ``ignore_index`` equal to a compact id.
    """
    if 0 <= ignore_index < len(seen_ids):
        raise ValueError(f"ignore_index {ignore_index} is also compact seen id {ignore_index}; use a negative value")
    lut = torch.full((size,), ignore_index, dtype=torch.long)
    for compact, dataset_id in enumerate(seen_ids):
        if not 0 <= dataset_id < size:
            raise ValueError(f"seen class id {dataset_id} outside the label table [0, {size})")
        lut[dataset_id] = compact
    return lut


def compact_with_lut(label: torch.Tensor, lut: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Apply :func:`seen_label_lut`; ids outside the table become ``ignore_index``; the result is int64."""
    # int64 first: on a uint8 map ``label < 256`` would compare against 256 cast to uint8 (0), i.e. never true.
    label = label.long()
    inside = (label >= 0) & (label < lut.numel())
    return torch.where(inside, lut[label.clamp(0, lut.numel() - 1)], lut.new_tensor(ignore_index))


def infer_pad_mask(images: torch.Tensor, label: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Crop padding of mmseg's Pad (bottom/right, image 0, label ignore): trailing all-black, all-ignore rows/columns.

    Args:
        images: uint8 (B, 3, H, W).
        label: (B, H, W).
        ignore_index: Label padding value (the model passes its compact labels, ignore -1).

    Returns:
        (B, H, W) bool.
    """
    empty = (images == 0).all(1) & (label == ignore_index)
    rows = empty.all(2)  # (B, H)
    cols = empty.all(1)  # (B, W)
    # Keep only the trailing run: a suffix of True values.
    rows = rows.flip(1).long().cumprod(1).flip(1).bool()
    cols = cols.flip(1).long().cumprod(1).flip(1).bool()
    return rows[:, :, None] | cols[:, None, :]


def check_label_ids(seen_ids: Sequence[int], dataset_ignore: int, label_ids: str) -> None:
    """Reject a training label convention in which a seen class and the dataset's ignore value share an id.

    Args:
        seen_ids: Dataset ids of the seen classes.
        dataset_ignore: ``cfg.loss.ignore_index``, the ignore value of the training labels.
        label_ids: ``cfg.label_ids`` ("dataset" or "compact").

    Raises:
        ValueError: the ignore value is a seen dataset id, or (compact labels) one of ``0..Ns-1``.
    """
    if label_ids == "compact" and 0 <= dataset_ignore < len(seen_ids):
        raise ValueError(
            f"loss.ignore_index {dataset_ignore} is also compact seen id {dataset_ignore} ({len(seen_ids)} seen "
            "classes): set loss.ignore_index to the labels' ignore value outside 0..Ns-1, or use label_ids='dataset'"
        )
    if label_ids == "dataset" and dataset_ignore in seen_ids:
        raise ValueError(
            f"loss.ignore_index {dataset_ignore} is also the dataset id of seen class "
            f"{list(seen_ids).index(dataset_ignore)}: set loss.ignore_index to the dataset's ignore value "
            "(ovcore.data.dataset_info(name).ignore_index) or remove that id from seen_classes"
        )


SCALAR_PARAMETERS = ("log_alpha", "bce_log_scale", "bce_bias")
"""Learned logit scales of the losses: exempt from weight decay whatever the recipe (this project's choice)."""


class CLIPZSS(nn.Module):
    """CLIP-ZSS training wrapper.

    Args:
        cfg: The config.
        teacher: A prebuilt teacher (tests); default builds ``cfg.teacher`` at ``cfg.crop_size``.
    """

    def __init__(self, cfg: CLIPZSSConfig, *, teacher: CLIPTeacher | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.class_names_all, self.seen_ids = resolve_vocabulary(cfg)
        self.seen_names = [self.class_names_all[i] for i in self.seen_ids]
        teacher = teacher if teacher is not None else CLIPTeacher(cfg.teacher, cfg.crop_size)
        # A list hides the teacher from the module tree (state_dict, parameters, DDP); _apply still moves it.
        self._teacher_box: list[CLIPTeacher] = [teacher]
        self.embed_dim = teacher.embed_dim
        self.student = Student(student_config_for_crop(cfg.student, cfg.crop_size), self.embed_dim)
        self.glm = GlobalLearningModule(cfg.glm)
        self.synthesizer = Synthesizer(self.embed_dim, cfg.synthesizer)
        check_label_ids(self.seen_ids, cfg.loss.ignore_index, cfg.label_ids)
        self.pseudo_labeler = PseudoLabeler(cfg.plm)
        log_alpha = torch.tensor(math.log(cfg.loss.alpha_init))
        if cfg.loss.learnable_alpha:
            self.log_alpha = nn.Parameter(log_alpha)
        else:
            self.register_buffer("log_alpha", log_alpha)
        self.bce_log_scale = nn.Parameter(torch.tensor(math.log(cfg.loss.bce_scale_init)))
        self.bce_bias = nn.Parameter(torch.tensor(float(cfg.loss.bce_bias_init)))

        self.register_buffer("student_mean", torch.tensor(self.student.mean), persistent=False)
        self.register_buffer("student_std", torch.tensor(self.student.std), persistent=False)
        self.register_buffer("teacher_mean", torch.tensor(teacher.mean), persistent=False)
        self.register_buffer("teacher_std", torch.tensor(teacher.std), persistent=False)
        lut = seen_label_lut(self.seen_ids, IGNORE_LABEL, max(256, len(self.class_names_all)))
        self.register_buffer("label_lut", lut, persistent=False)

        self.templates = self._templates()
        self.register_buffer(
            "seen_text", teacher.encode_classes(self.seen_names, self.templates).cpu(), persistent=False
        )
        self.register_buffer("text_embeddings", torch.zeros(0, self.embed_dim), persistent=False)
        self.register_buffer("seen_mask", torch.zeros(0, dtype=torch.bool), persistent=False)
        self.class_names: list[str] = []
        self._text_cache: dict[tuple[tuple[str, ...], str], torch.Tensor] = {}
        self.set_vocabulary(self.class_names_all)
        self.last_stats: dict[str, float] = {}

    # ------------------------------------------------------------------ plumbing

    @property
    def teacher(self) -> CLIPTeacher:
        """The frozen teacher (not a registered submodule)."""
        return self._teacher_box[0]

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> CLIPZSS:
        super()._apply(fn, recurse)
        self._teacher_box[0]._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> CLIPZSS:
        super().train(mode)
        self.teacher.train(False)
        return self

    def _templates(self) -> list[str]:
        from ovcore.text import get_templates

        return list(get_templates(self.cfg.teacher.templates))

    @property
    def alpha(self) -> torch.Tensor:
        """Eq. 7 alpha (learnable, clamped to ``alpha_max``)."""
        return self.log_alpha.exp().clamp(max=self.cfg.loss.alpha_max)

    @property
    def num_seen(self) -> int:
        return len(self.seen_ids)

    # ------------------------------------------------------------------ vocabulary

    @torch.no_grad()
    def set_vocabulary(self, class_names: Sequence[str], templates: str | Sequence[str] | None = None) -> None:
        """Switch the inference class list (text embeddings from the teacher's text tower, cached per name).

        Args:
            class_names: T names; the seen calibration applies to those among the training seen names.
            templates: A template set name or list (default: the teacher's, ``cfg.teacher.templates``).

        Raises:
            ValueError: an empty, blank or repeated name.
        """
        from ovcore.text import check_vocabulary

        names = check_vocabulary(class_names)  # empty, blank or repeated names: ValueError naming them
        temps = list(self.templates) if templates is None else _template_list(templates)
        dev = self.seen_text.device
        self.text_embeddings = self._embed(names, temps).to(dev)
        seen = set(self.seen_names)
        self.seen_mask = torch.tensor([n in seen for n in names], dtype=torch.bool, device=dev)
        self.class_names = names

    def _embed(self, names: list[str], temps: list[str]) -> torch.Tensor:
        """(T, C) embeddings of ``names`` under ``temps``, encoded once per (templates, name)."""
        key = tuple(temps)
        missing = [n for n in dict.fromkeys(names) if (key, n) not in self._text_cache]
        if missing:
            emb = self.teacher.encode_classes(missing, temps).cpu()
            self._text_cache.update({(key, n): row for n, row in zip(missing, emb, strict=True)})
        return torch.stack([self._text_cache[(key, n)] for n in names])

    # ------------------------------------------------------------------ inputs

    def _inputs(self, images: torch.Tensor, pad: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Student input and teacher input (uint8, or float normalised with the student's mean/std).

        Crop padding (``pad``, True where padded) is 0 in both after their own normalisation, as mmseg pads after
        normalising: each network sees its own mean colour there, whatever colour the transform padded with.
        """
        student_x = normalize_images(images, self.student_mean, self.student_std)
        if self.cfg.teacher.normalization == "student":
            teacher_x = student_x
        else:
            unit = student_x * self.student_std.view(1, 3, 1, 1) + self.student_mean.view(1, 3, 1, 1)
            teacher_x = (unit - self.teacher_mean.view(1, 3, 1, 1)) / self.teacher_std.view(1, 3, 1, 1)
        if pad is None:
            return student_x, teacher_x
        keep = ~pad[:, None].to(device=student_x.device, dtype=torch.bool)
        return student_x * keep, teacher_x * keep

    def _batch_inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images and compact labels on the model's device, and the crop-padding mask (given, inferred or None)."""
        dev = self.student_mean.device
        images, label = batch["image"].to(dev), self.compact_labels(batch["label"].to(dev))
        pad = batch.get("pad_mask")
        if pad is None and self.cfg.infer_pad_mask and images.dtype == torch.uint8:
            # On the compact labels: an unseen pixel counts as ignore whether or not the remap was done upstream.
            pad = infer_pad_mask(images, label, IGNORE_LABEL)
        return images, label, pad.to(dev).bool() if pad is not None else None

    def compact_labels(self, label: torch.Tensor) -> torch.Tensor:
        """Dataset ids -> int64 compact seen ids ``0..Ns-1``; everything else (unseen, ignore) -> -1.

        The only place that reads the dataset's ignore value (``cfg.loss.ignore_index``): from here on (PLM, fused
        labels, losses, centroids) ignore is :data:`clipzss.losses.IGNORE_LABEL`, which no class id can reach.
        With ``cfg.label_ids == "compact"`` the labels are compact already; the ignore value and out-of-range ids
        become -1.
        """
        if self.cfg.label_ids == "compact":
            label = label.long()
            seen = (label >= 0) & (label < self.num_seen) & (label != self.cfg.loss.ignore_index)
            return label.masked_fill(~seen, IGNORE_LABEL)
        return compact_with_lut(label, self.label_lut, IGNORE_LABEL)

    # ------------------------------------------------------------------ training

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Training losses (Eq. 8).

        Args:
            batch: ``{"image": uint8 or normalised float (B, 3, H, W), "label": integer (B, H, W) in dataset ids
                (unseen ids are ignored whether or not they were remapped upstream), optional "pad_mask": bool
                (B, H, W)}``.

        Returns:
            ``{"loss_global", "loss_nel", "loss_ce", "loss_bce"}``, each already multiplied by its weight.
        """
        cfg, lcfg = self.cfg, self.cfg.loss
        images, label = batch["image"], batch["label"]
        if label.ndim != 3 or label.shape[0] != images.shape[0] or label.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"label {tuple(label.shape)} does not match images {tuple(images.shape)}")
        images, compact, pad = self._batch_inputs(batch)

        student_x, teacher_x = self._inputs(images, pad)
        cls, dense = self.teacher(teacher_x)
        feats = self.student(student_x)
        pl = self.pseudo_labeler(dense, compact, self.num_seen, pad)

        # Synthesizer keys/values: unit CLS tokens (the bank stores unit tokens too, so both share one scale); read
        # before the GLM enqueues this batch.
        memory = F.normalize(cls, dim=-1)
        if cfg.synthesizer.memory == "batch+bank":
            bank = self.glm.bank.tokens(device=cls.device)
            if bank is not None:
                memory = torch.cat([memory, bank.to(memory.dtype)], 0)
        loss_global = self.glm(feats, cls)
        target, num_pseudo = pl.fused, pl.num_pseudo
        if lcfg.loss_resolution == "feature":
            target = F.interpolate(target[:, None].float(), size=feats.shape[-2:], mode="nearest")[:, 0].long()
            # A small pseudo class can vanish in the down-sampling: it drops out (no prototype, no channel).
            target, num_pseudo = drop_absent_pseudo_ids(target, self.num_seen)
        num_labels = self.num_seen + num_pseudo
        cents, present = label_centroids(feats, target, num_labels, IGNORE_LABEL)
        ids = present.nonzero()[:, 0]
        protos = self.synthesizer(cents[ids], memory)
        is_seen = ids < self.num_seen
        seen_protos, seen_ids = protos[is_seen], ids[is_seen]
        # Every pseudo id 0..K-1 owns pixels at the loss resolution, so the pseudo rows come in id order.
        pseudo_protos = protos[~is_seen]
        if pseudo_protos.shape[0] != num_pseudo:
            raise RuntimeError("internal: a pseudo class has no pixel at the loss resolution")

        logits = classifier_logits(
            feats, self.seen_text, self.alpha, pseudo_protos, lcfg.beta, normalize_features=lcfg.normalize_features
        )
        if lcfg.loss_resolution == "label":
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss_ce = ce_loss(logits, target, IGNORE_LABEL)
        loss_nel = nel_loss(
            logits,
            target,
            ignore_index=IGNORE_LABEL,
            focal_alpha=lcfg.nel_focal_alpha,
            focal_gamma=lcfg.nel_focal_gamma,
            focal_weight=lcfg.nel_focal_weight,
            dice_weight=lcfg.nel_dice_weight,
        )
        loss_bce = bce_prototype_loss(
            seen_protos, seen_ids, self.seen_text, self.bce_log_scale.exp(), self.bce_bias, lcfg.bce_mode
        )
        # DDP (find_unused_parameters=False) needs every trainable parameter in the graph each step, also when a
        # batch has no seen prototype or no label at all: a zero that touches the training-only modules.
        loss_bce = loss_bce + 0.0 * self._training_modules_guard()
        self._record(pl)
        return {
            "loss_global": lcfg.weight_global * loss_global,
            "loss_nel": lcfg.weight_nel * loss_nel,
            "loss_ce": lcfg.weight_ce * loss_ce,
            "loss_bce": lcfg.weight_bce * loss_bce,
        }

    def _training_modules_guard(self) -> torch.Tensor:
        params = [self.bce_log_scale, self.bce_bias, *self.synthesizer.parameters()]
        if isinstance(self.log_alpha, nn.Parameter):
            params.append(self.log_alpha)
        return sum(p.reshape(-1)[:1].sum() for p in params)

    def _record(self, pl: PseudoLabels) -> None:
        self.last_stats = {
            "num_pseudo": float(pl.num_pseudo),
            "seeds_per_image": float(pl.num_seeds.float().mean()),
            "clusters_per_image": float(pl.num_clusters.float().mean()),
            "alpha": float(self.alpha.detach()),
        }

    @torch.no_grad()
    def pseudo_labels(self, batch: dict[str, Any]) -> PseudoLabels:
        """The PLM output for a batch (for inspection / visualisation): the same pseudo labels as ``forward``."""
        images, compact, pad = self._batch_inputs(batch)
        _, teacher_x = self._inputs(images, pad)
        _, dense = self.teacher(teacher_x)
        return self.pseudo_labeler(dense, compact, self.num_seen, pad)

    # ------------------------------------------------------------------ inference

    def predict(
        self,
        images: Any,
        class_names: Sequence[str] | None = None,
        *,
        mode: str | None = None,
        templates: str | Sequence[str] | None = None,
    ) -> Prediction:
        """Segment with the student only (the teacher is not run), in eval mode, without autograd.

        Args:
            images: RGB images of one size: a uint8 or 0..255 float tensor (B, 3, H, W) or (3, H, W), or PIL images,
                paths, numpy arrays or a list of them (``ovcore.data.images.as_image_batch``).
            class_names: Switch to this vocabulary first (embeddings are cached).
            mode: "whole" or "slide"; default ``cfg.test_mode``.
            templates: Template set for ``class_names``.

        Returns:
            A :class:`~ovcore.method.Prediction`: softmax ``probs`` (B, T, H, W) of the calibrated logits, arg-max
            ``labels``, ``class_names`` and per-image ``stats`` (``mode``, ``num_classes``, ``seen_calibration``).
        """
        if class_names is not None:
            self.set_vocabulary(class_names, templates)
        return predict_with_student(
            self, images, text=self.text_embeddings, alpha=self.alpha, seen_mask=self.seen_mask, mode=mode
        )

    # ------------------------------------------------------------------ optimisation

    def default_optim(self, base: OptimConfig) -> OptimConfig:
        """The recipe's grouping as rules of the engine's ``ovcore.train.build_param_groups``.

        Backbone parameters (``student.backbone.*``) get ``lr x cfg.backbone_lr_mult``, all others (head, GLM,
        synthesizer, learned scalars) ``lr x cfg.head_lr_mult``. Weight decay is the shared rule
        ``ovcore.train.weight_decay_of`` with the base's options: with the defaults (``decay_1d=True``,
        ``weight_decay_norm=0``) that is mmseg's Swin recipe, i.e. no decay for normalisation layers and the position
        tables of ``cfg.no_decay_names`` only, while biases decay (``--optim.no-decay-1d`` exempts every 1-D
        parameter instead). The learned scalars of the losses (alpha, the BCE scale and bias) never decay: they are
        logit scales, not weights (this project's choice).

        Args:
            base: The run's optimizer options (its own lr_multipliers take precedence on the same pattern).
        """
        mults = {"*": float(self.cfg.head_lr_mult), "student.backbone.*": float(self.cfg.backbone_lr_mult)}
        return add_rules(base, lr_multipliers=mults, no_decay_names=(*self.cfg.no_decay_names, *SCALAR_PARAMETERS))

    # ------------------------------------------------------------------ export

    def export_inference_state_dict(self, *, include_text_tower: bool | None = None) -> dict[str, Any]:
        """What :class:`ZeroShotSegmenter` needs: config, student weights, alpha, the vocabulary's text embeddings.

        The teacher's image tower is never included. ``include_text_tower`` adds the CLIP text weights so new class
        names can be encoded at test time without the original CLIP file; the default includes them only when the
        teacher was randomly initialised (its weights cannot be re-created from a tag or a path).

        Returns:
            A dict of tensors and builtins (``torch.save`` it; it loads with ``weights_only=True``).
        """
        teacher_cfg = self.cfg.teacher
        if include_text_tower is None:
            include_text_tower = teacher_cfg.pretrained is None
        names = list(dict.fromkeys(self.class_names_all + self.class_names))
        emb = self._embed(names, list(self.templates)).float().cpu()
        text_encoder: dict[str, Any] = {
            "model_name": teacher_cfg.model_name,
            "pretrained": None if teacher_cfg.pretrained is None else str(teacher_cfg.pretrained),
            "cache_dir": teacher_cfg.cache_dir,
            "quick_gelu": self.teacher.quick_gelu,
            "templates": list(self.templates),
        }
        if include_text_tower:
            text_encoder["state_dict"] = self.teacher.text_weights()
        return {
            "format": INFERENCE_FORMAT,
            "config": config_to_dict(self.cfg),
            "embed_dim": self.embed_dim,
            "student": {k: v.detach().cpu() for k, v in self.student.state_dict().items()},
            "logit_scale": float(self.alpha.detach()),
            "class_names": names,
            "text_embeddings": emb,
            "seen_class_names": list(self.seen_names),
            "text_encoder": text_encoder,
        }

    def to_segmenter(self) -> ZeroShotSegmenter:
        """A :class:`ZeroShotSegmenter` with this model's student (a copy) and current vocabulary."""
        seg = ZeroShotSegmenter.from_checkpoint(self.export_inference_state_dict())
        seg.set_vocabulary(self.class_names)
        seg.preset = getattr(self, "preset", None)  # set by clipzss.create_clipzss(name)
        return seg.to(self.student_mean.device)

    def save_pretrained(self, folder: str | os.PathLike, metrics: dict[str, Any] | None = None, **card: Any) -> Any:
        """Write the inference model (:meth:`to_segmenter`) in the Hub layout of ``ovcore.hub``: config.json,
        model.safetensors, README.md with ``metrics``; ``clipzss.create_segmenter(folder)`` loads it."""
        return self.to_segmenter().save_pretrained(folder, metrics, **card)
