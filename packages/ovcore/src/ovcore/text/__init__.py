"""Prompt templates and CLIP text embeddings of class vocabularies (SED paper Sec. 3.1; ZegCLIP's templates)."""

from __future__ import annotations

from ._cache import VocabularyCache, cached_encode_vocabulary, default_cache_dir, weights_id_of
from ._templates import TEMPLATE_SETS, get_templates, list_template_sets
from ._vocabulary import build_prompts, check_vocabulary, encode_vocabulary, split_synonyms

__all__ = [
    "TEMPLATE_SETS",
    "get_templates",
    "list_template_sets",
    "split_synonyms",
    "check_vocabulary",
    "build_prompts",
    "encode_vocabulary",
    "VocabularyCache",
    "cached_encode_vocabulary",
    "default_cache_dir",
    "weights_id_of",
]
