"""CLIP-ZSS: "CLIP is Also a Good Teacher" (Chen et al., arXiv 2310.02296) on timm students.

Training: :func:`create_clipzss` (preset name + overrides) -> :class:`CLIPZSS` (``model(batch)`` -> losses).
Inference: :func:`create_segmenter` / :meth:`ZeroShotSegmenter.from_checkpoint` -> student + text embeddings only.
See the package README for every reading of the paper and the spec section it follows.
"""

from __future__ import annotations

from . import presets  # noqa: F401  (registers the presets)
from ._registry import (
    DATASET_DEFAULTS,
    create_clipzss,
    create_segmenter,
    get_preset_config,
    is_preset,
    list_presets,
    register_preset,
)
from .config import (
    CLIPZSSConfig,
    GLMConfig,
    LossConfig,
    PLMConfig,
    StudentConfig,
    SynthesizerConfig,
    TeacherConfig,
    config_from_dict,
    config_to_dict,
)
from .glm import CLSTokenBank, GlobalLearningModule, attention_pool, info_nce
from .kmeans import batched_kmeans, faiss_kmeans, multiscale_seeds, seed_grid_counts, sklearn_kmeans
from .model import CLIPZSS
from .pseudo_labels import PseudoLabeler, fuse_clusters, fuse_labels
from .segmenter import ZeroShotSegmenter
from .students import Student
from .synthesizer import Synthesizer, label_centroids
from .teacher import CLIPTeacher

__all__ = [
    "CLIPTeacher",
    "CLIPZSS",
    "CLIPZSSConfig",
    "CLSTokenBank",
    "DATASET_DEFAULTS",
    "GLMConfig",
    "GlobalLearningModule",
    "LossConfig",
    "PLMConfig",
    "PseudoLabeler",
    "Student",
    "StudentConfig",
    "Synthesizer",
    "SynthesizerConfig",
    "TeacherConfig",
    "ZeroShotSegmenter",
    "attention_pool",
    "batched_kmeans",
    "config_from_dict",
    "config_to_dict",
    "create_clipzss",
    "create_segmenter",
    "faiss_kmeans",
    "fuse_clusters",
    "fuse_labels",
    "get_preset_config",
    "info_nce",
    "is_preset",
    "label_centroids",
    "list_presets",
    "multiscale_seeds",
    "register_preset",
    "seed_grid_counts",
    "sklearn_kmeans",
]
