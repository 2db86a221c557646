"""CLIP-ZSS: "CLIP is Also a Good Teacher" (Chen et al., arXiv 2310.02296) on timm students.

Training: :func:`create_clipzss` (preset name + overrides) -> :class:`CLIPZSS` (``model(batch)`` -> losses).
Inference: :func:`create_segmenter` / :meth:`ZeroShotSegmenter.from_checkpoint` -> student + text embeddings only.
See the package README for every reading of the paper and the paper section it reads.
"""

from ovcore.lazy import lazy_exports

_EXPORTS = {
    "DATASET_DEFAULTS": "clipzss._registry",
    "create_clipzss": "clipzss._registry",
    "create_segmenter": "clipzss._registry",
    "get_preset_config": "clipzss._registry",
    "is_preset": "clipzss._registry",
    "list_presets": "clipzss._registry",
    "register_clipzss_preset": "clipzss._registry",
    "register_preset": "clipzss._registry",
    "CLIPZSSConfig": "clipzss.config",
    "GLMConfig": "clipzss.config",
    "LossConfig": "clipzss.config",
    "PLMConfig": "clipzss.config",
    "StudentConfig": "clipzss.config",
    "SynthesizerConfig": "clipzss.config",
    "TeacherConfig": "clipzss.config",
    "config_from_dict": "clipzss.config",
    "config_to_dict": "clipzss.config",
    "CLSTokenBank": "clipzss.glm",
    "GlobalLearningModule": "clipzss.glm",
    "attention_pool": "clipzss.glm",
    "info_nce": "clipzss.glm",
    "batched_kmeans": "clipzss.kmeans",
    "faiss_kmeans": "clipzss.kmeans",
    "multiscale_seeds": "clipzss.kmeans",
    "seed_grid_counts": "clipzss.kmeans",
    "sklearn_kmeans": "clipzss.kmeans",
    "CLIPZSS": "clipzss.model",
    "PseudoLabeler": "clipzss.pseudo_labels",
    "fuse_clusters": "clipzss.pseudo_labels",
    "fuse_labels": "clipzss.pseudo_labels",
    "ZeroShotSegmenter": "clipzss.segmenter",
    "Student": "clipzss.students",
    "Synthesizer": "clipzss.synthesizer",
    "label_centroids": "clipzss.synthesizer",
    "CLIPTeacher": "clipzss.teacher",
}

__all__ = list(_EXPORTS)
# Names are imported on first use: `import clipzss` (and every clipzss command's --help) stays free of torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
