"""CLIP-ZSS configuration as plain dataclasses (configs as data, open_clip style).

Every field that settles an ambiguity of the paper names the paper section (Sec. x.y, Eq. n) it reads; the package
README lists the same choices. All defaults are the README's recommended readings; the alternatives are
the other values of the ``Literal`` options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class StudentConfig:
    """The trainable closed-set segmenter: a timm ``features_only`` backbone and a decode head (paper Sec. 1, 4.3)."""

    backbone: str = "swin_base_patch4_window7_224"
    """timm model name (any model that supports ``features_only=True``)."""

    pretrained: bool | str = False
    """timm pretrained weights: False (random init), True (the default tag) or a tag/local file path
    (read by ovcore without running code, given to timm as ``pretrained_cfg_overlay=dict(state_dict=...)``).
    Weights cannot be downloaded offline."""

    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of ``timm.create_model`` (e.g. ``img_size=512`` for Swin, ``drop_path_rate``)."""

    head: Literal["upernet", "segformer"] = "upernet"
    """Decode head: UPerNet-style (PPM + FPN, mmseg UPerHead) or SegFormer-style all-MLP."""

    head_channels: int = 512
    """Internal width of the head (mmseg: UPerHead 512, SegformerHead 256)."""

    head_dropout: float = 0.1
    """Dropout before the output projection (mmseg ``dropout_ratio``)."""

    norm: Literal["bn", "gn"] = "bn"
    """Normalisation in the head; 'bn' becomes SyncBatchNorm under the engine's ``--sync-bn``."""


@dataclass
class TeacherConfig:
    """The frozen open_clip ViT teacher (paper Sec. 3.2, 4.2)."""

    model_name: str = "ViT-B-16"
    """open_clip architecture (through ``ovcore.clip.create_clip``); "ovcore-vit-tiny" for CPU tests."""

    pretrained: str | None = "openai"
    """open_clip tag or local weights file; None = random init (tests only)."""

    cache_dir: str | None = None
    """Where open_clip weights are looked up."""

    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    """Teacher precision (it is frozen, so half precision is safe on GPU)."""

    normalization: Literal["clip", "student"] = "clip"
    """Pixel normalisation of the teacher input: CLIP's own mean/std (our reading) or the student's
    (ImageNet, what ZegCLIP feeds its CLIP)."""

    templates: str = "zegclip"
    """ovcore.text template set: "zegclip" (15-template ensemble, COCO/Context) or "zegclip_single" (VOC), ZegCLIP's."""

    text_cache_dir: str | None = None
    """On-disk cache of text embeddings (ovcore.text.VocabularyCache); None disables the disk cache."""


@dataclass
class GLMConfig:
    """Global Learning Module, Eqs. 1-3 (paper Sec. 3.2)."""

    pooling: Literal["attention", "mean", "max"] = "attention"
    """Pooling of the student features: parameter-free attention with the CLIP CLS as query (paper), or the
    mean / max ablations of Table 3."""

    normalize_query: bool = False
    """L2-normalise the CLS query inside the softmax of Eq. 1 (the paper uses raw tokens)."""

    normalize_keys: bool = False
    """L2-normalise the student features inside the softmax of Eq. 1 (the paper uses raw features; normalising both
    makes the softmax almost uniform, i.e. mean pooling, because |cos| / sqrt(C) is tiny)."""

    temperature: float = 0.07
    """InfoNCE temperature tau on cosine similarities."""

    bank_size: int = 24
    """FIFO CLS-token bank size; 0 disables the bank (Table 5)."""

    bank_unit: Literal["iterations", "tokens"] = "iterations"
    """'iterations': the bank holds the CLS tokens of the last ``bank_size`` iterations (paper's V_n, recommended);
    'tokens': it holds the last ``bank_size`` tokens."""

    gather_distributed: bool = True
    """Under torch.distributed, use the CLS tokens of every process as negatives (all_gather, no grad needed: the
    teacher is frozen); the bank then stores the gathered tokens."""


@dataclass
class PLMConfig:
    """Pixel Learning Module: pseudo-label generation (paper Sec. 3.3)."""

    windows: tuple[int, ...] = (3, 7)
    """Sliding-window sizes of the multi-scale seeds (paper: 3 and 7)."""

    seed_mode: Literal["lattice", "adaptive"] = "lattice"
    """'lattice': average pooling with kernel w and stride w + 1 (64 + 16 seeds on 32x32, our Eq. 4 reading);
    'adaptive': adaptive average pooling to (grid // (w + 1)) per side."""

    seed_keep: Literal["center", "majority", "all"] = "center"
    """Which seeds "belong to unannotated areas": the window's centre token is unannotated (recommended), most
    of the window is, or keep every seed."""

    token_rule: Literal["majority", "nearest"] = "majority"
    """How the pixel-level unannotated mask becomes a token mask: > 50% of the token's pixels are unannotated
    (recommended) or nearest sampling."""

    kmeans_iters: int = 20
    """K-means iterations (the paper gives no count; 10-20 is typical). Stops early at a fixed point."""

    kmeans_metric: Literal["cosine", "l2"] = "cosine"
    """'cosine': spherical K-means on L2-normalised tokens (assign by max cosine, mean then re-normalise; our reading);
    'l2': Lloyd's K-means with Euclidean distance on the normalised tokens."""

    kmeans_backend: Literal["auto", "torch", "faiss", "sklearn"] = "auto"
    """'auto' = batched torch (whole batch at once; on CPU and GPU, see benchmarks/RESULTS.md);
    'faiss' / 'sklearn' run per image on CPU."""

    fusion_threshold: float = 0.8
    """Mask-fusion similarity threshold lambda (Table 6)."""

    fusion_mode: Literal["one_hop", "transitive"] = "one_hop"
    """'one_hop': the paper's NMS-like rule (row of the maximum, each seed used once; Sec. 3.3);
    'transitive': connected components of the similarity graph (monotone in lambda; not the paper's rule)."""

    min_pseudo_tokens: int = 0
    """Drop pseudo classes with fewer tokens than this (not in the paper; 0 keeps all)."""


@dataclass
class SynthesizerConfig:
    """Pseudo-weight synthesizer (paper Sec. 3.3, Eqs. 5-6)."""

    kind: Literal["decoder", "mlp", "identity"] = "decoder"
    """Transformer decoder (paper), FC-ReLU-FC or the centroids themselves (Table 4 ablations)."""

    layers: int = 3
    """Decoder layers (ZegCLIP's decoder depth; the paper does not say)."""

    heads: int = 8
    """Attention heads (must divide the embedding dimension)."""

    ffn_ratio: float = 4.0
    """Feed-forward width / embedding dimension."""

    dropout: float = 0.0
    """Dropout inside the decoder."""

    memory: Literal["batch", "batch+bank"] = "batch"
    """Keys/values: the batch's CLIP CLS tokens (recommended) or those plus the GLM bank."""

    detach_queries: bool = False
    """Detach the centroids before the decoder (the paper does not say; default keeps the gradient)."""


@dataclass
class LossConfig:
    """Classifier (Eq. 7) and losses (Eq. 8), paper Sec. 3.3-3.4, 4.2."""

    weight_global: float = 1.0
    """Weight of L_global (InfoNCE)."""

    weight_nel: float = 1.0
    """Weight of L_NEL (applied on top of its internal focal/dice weights)."""

    weight_ce: float = 1.0
    """Weight of the cross-entropy on the fused labels."""

    weight_bce: float = 1.0
    """Weight of L_bce (seen prototypes vs seen text embeddings)."""

    nel_focal_weight: float = 100.0
    """ZegCLIP's ``mask_weight`` (focal) in its zero-shot configs."""

    nel_dice_weight: float = 1.0
    """ZegCLIP's ``dice_weight``."""

    nel_focal_alpha: float = 0.25
    """Sigmoid focal alpha."""

    nel_focal_gamma: float = 2.0
    """Sigmoid focal gamma; reading (b) of the paper's gamma (Sec. 4.2) sets this instead of the calibration."""

    normalize_features: bool = True
    """L2-normalise the student features per pixel in Eq. 7 and at inference (our reading)."""

    alpha_init: float = 1.0 / 0.07
    """Initial value of the learnable alpha of Eq. 7 (CLIP's logit-scale init; stored as a log, clamped)."""

    alpha_max: float = 100.0
    """Upper clamp of alpha."""

    learnable_alpha: bool = True
    """Learn alpha (paper) or keep it fixed at alpha_init."""

    beta: float = 2.0
    """Scale of the cosine pseudo-prototype logits of Eq. 7."""

    bce_mode: Literal["full", "positive"] = "full"
    """'full': multi-label BCE of each seen prototype against every seen text (own class positive, others
    negative; recommended); 'positive': only -log sigmoid of the own-class logit (literal Eq. 6)."""

    bce_scale_init: float = 10.0
    """Initial learnable scale of the BCE logits (cosine x scale + bias; the paper gives none)."""

    bce_bias_init: float = -10.0
    """Initial learnable bias of the BCE logits (SigLIP-style, because CLIP texts are mutually similar)."""

    loss_resolution: Literal["label", "feature"] = "label"
    """Upsample the logits bilinearly to the label size before the losses (mmseg, recommended) or downsample the
    labels (nearest) to the feature size (less memory)."""

    ignore_index: int = 255
    """Ignore value of the training labels, read only at the input (``CLIPZSS.compact_labels``); the compact and
    fused labels, CE, NEL and the centroids use -1, which no seen or pseudo id can reach."""


@dataclass
class CLIPZSSConfig:
    """A whole CLIP-ZSS model: student, teacher, modules, losses, vocabulary and optimisation hints."""

    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    glm: GLMConfig = field(default_factory=GLMConfig)
    plm: PLMConfig = field(default_factory=PLMConfig)
    synthesizer: SynthesizerConfig = field(default_factory=SynthesizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    crop_size: int = 512
    """Training crop; the teacher runs at this size (512 -> 32x32 tokens for ViT-B/16, paper Sec. 4.2)."""

    dataset: str | None = None
    """A zero-shot split name of ovcore.data ("voc_zs", "coco_stuff_zs", "context_zs") that fills class_names and
    seen_classes; None uses the two fields below."""

    class_names: list[str] = field(default_factory=list)
    """All class names in dataset order (seen + unseen); the default inference vocabulary."""

    seen_classes: list[int] = field(default_factory=list)
    """Dataset ids of the seen classes (the only ones whose names are used in training)."""

    label_ids: Literal["dataset", "compact"] = "dataset"
    """Training labels in dataset ids with unseen already ignore (``ZeroShotDataset(compact=False)``, the model
    compacts seen ids with ZegCLIP's lookup table) or already compact ``0..Ns-1`` (``compact=True``)."""

    test_mode: Literal["slide", "whole"] = "slide"
    """Inference mode (the paper gives none): sliding ``crop_size`` windows with stride 426/512 of the crop (ZegCLIP) or
    the whole image at once."""

    infer_pad_mask: bool = True
    """When a batch has no "pad_mask" (MMSegTrainTransform gives one), treat the trailing bottom rows / right columns
    that are black (uint8 0) and ignore-labelled as crop padding (a pipeline that pads with black), so padding is
    never pseudo-labelled and both networks see it as 0 after normalisation."""

    seen_calibration: float = 0.0
    """Reading (a) of the paper's gamma (Sec. 4.2): subtracted from the seen-class logits at inference
    (COCO-Stuff 1.5, VOC/Context 0)."""

    backbone_lr_mult: float = 1.0
    """Learning-rate multiplier of the backbone."""

    head_lr_mult: float = 1.0
    """Learning-rate multiplier of the head and the training-only modules (mmseg SegFormer: 10)."""

    no_decay_names: tuple[str, ...] = (
        "pos_embed",
        "absolute_pos_embed",
        "relative_position_bias_table",
        "pos_block",
        "cls_token",
    )
    """Parameter-name substrings without weight decay besides the norm layers: the position tables. mmseg's Swin
    recipe exempts ``absolute_pos_embed`` and ``relative_position_bias_table``; the other names are the position
    tables of other backbones (ViT, MiT) and match nothing in Swin. Biases decay unless --optim.no-decay-1d."""

    def validate(self, prefix: str = "--model.") -> None:
        """Check the numeric fields before a model is built; messages name the flags (``prefix`` + field).

        Raises:
            ValueError: a size, count, rate or probability outside its range.
        """
        from ovcore.cmd.errors import check_min, check_positive, check_range

        for option, value, minimum in (
            ("crop-size", self.crop_size, 1),
            ("student.head-channels", self.student.head_channels, 1),
            ("glm.bank-size", self.glm.bank_size, 0),
            ("plm.kmeans-iters", self.plm.kmeans_iters, 1),
            ("plm.min-pseudo-tokens", self.plm.min_pseudo_tokens, 0),
            ("synthesizer.layers", self.synthesizer.layers, 0),
            ("synthesizer.heads", self.synthesizer.heads, 1),
            ("backbone-lr-mult", self.backbone_lr_mult, 0),
            ("head-lr-mult", self.head_lr_mult, 0),
        ):
            check_min(prefix + option, value, minimum)
        for window in self.plm.windows:
            check_min(prefix + "plm.windows", window, 1)
        check_positive(prefix + "glm.temperature", self.glm.temperature)
        check_positive(prefix + "synthesizer.ffn-ratio", self.synthesizer.ffn_ratio)
        check_range(prefix + "student.head-dropout", self.student.head_dropout, 0.0, 1.0, open_high=True)
        check_range(prefix + "synthesizer.dropout", self.synthesizer.dropout, 0.0, 1.0, open_high=True)
        check_range(prefix + "plm.fusion-threshold", self.plm.fusion_threshold, -1.0, 1.0)


def config_to_dict(cfg: CLIPZSSConfig) -> dict[str, Any]:
    """Plain-data (JSON / ``weights_only`` safe) view of a config (``ovcore.train.config_to_dict``).

    Args:
        cfg: The config.

    Returns:
        Nested dicts of builtins; tuples become lists.
    """
    from ovcore.train.config import config_to_dict as plain_config

    return plain_config(cfg)


def config_from_dict(data: dict[str, Any]) -> CLIPZSSConfig:
    """Inverse of :func:`config_to_dict` (unknown keys raise ``ValueError``).

    Args:
        data: Output of :func:`config_to_dict` (possibly partial).

    Returns:
        The config.
    """
    return _build(CLIPZSSConfig, data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for key, value in data.items():
        current = getattr(defaults, key)
        if dataclasses.is_dataclass(current):
            kwargs[key] = _build(type(current), value)
        elif isinstance(current, tuple) and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def replace(cfg: Any, **overrides: Any) -> Any:
    """``dataclasses.replace`` that also accepts dotted names for nested fields (``"plm.fusion_threshold"``).

    Args:
        cfg: A config dataclass.
        **overrides: Field values; nested fields may be given as ``plm__fusion_threshold`` or as a dict for the
            sub-config (``plm={"fusion_threshold": 0.9}``).

    Returns:
        A new config.
    """
    out = dataclasses.replace(cfg)
    for key, value in overrides.items():
        path = key.replace("__", ".").split(".")
        target = out
        for part in path[:-1]:
            if not hasattr(target, part):
                raise ValueError(f"unknown config field {key!r}")
            sub = dataclasses.replace(getattr(target, part))
            setattr(target, part, sub)
            target = sub
        leaf = path[-1]
        if not hasattr(target, leaf):
            raise ValueError(f"unknown config field {key!r}")
        current = getattr(target, leaf)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = replace(current, **value)  # recursive: unknown sub-fields raise ValueError too
        setattr(target, leaf, value)
    return out
