"""On-disk cache of vocabulary embeddings, so a large vocabulary (ADE-847 x 80 templates) is encoded once.

Entries are keyed by the sha256 of a canonical JSON of (model name, weights id, templates, class names) and stored
as ``<cache_dir>/<key>.pt`` holding plain tensors and strings (read back with ``weights_only=True``). Writes go to a
temporary file in the same folder and are renamed into place, so concurrent readers never see half a file.

Each class is also stored on its own, as the entry of the one-class vocabulary in ``<cache_dir>/classes/``: a class's
embeddings depend on its own name only, so a new vocabulary (another order, one class added) loads the classes it
shares with earlier ones and encodes only its new names. The whole-vocabulary entry stays the one-file fast path.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ovcore.files import atomic_write
from ovcore.safe_load import load_torch_file

from ._vocabulary import _check_inputs, _model_device, encode_vocabulary

__all__ = ["VocabularyCache", "cached_encode_vocabulary", "default_cache_dir", "weights_id_of"]

_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$OVCORE_CACHE_DIR/text_embeddings``, default ``~/.cache/ovcore/text_embeddings``."""
    root = os.environ.get("OVCORE_CACHE_DIR") or Path.home() / ".cache" / "ovcore"
    return Path(root) / "text_embeddings"


def weights_id_of(pretrained: str | os.PathLike | None) -> str:
    """A cache id for the weights given to ``ovcore.clip.create_clip``.

    A tag maps to ``"tag:<tag>"``; an existing file to its absolute path, size and modification time (cheap, and it
    changes when the file is replaced).

    Raises:
        ValueError: ``pretrained`` is None: randomly initialised weights have no stable identity to cache under.
    """
    if pretrained is None:
        raise ValueError("random-init CLIP weights cannot be cached; pass a tag or a checkpoint path")
    path = Path(pretrained)
    if path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"tag:{pretrained}"


class VocabularyCache:
    """A folder of cached (T, P, D) vocabulary embeddings.

    Args:
        cache_dir: the folder (created on first write); default :func:`default_cache_dir`.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    @staticmethod
    def key(model_name: str, weights_id: str, templates: Sequence[str], class_names: Sequence[str]) -> str:
        """sha256 hex digest of the canonical JSON of the inputs that determine the embeddings."""
        if not model_name or not weights_id:
            raise ValueError("model_name and weights_id must be non-empty strings")
        payload = {
            "version": _FORMAT_VERSION,
            "model": model_name,
            "weights": weights_id,
            "templates": list(templates),
            "names": list(class_names),
        }
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.pt"

    def load(self, key: str) -> torch.Tensor | None:
        """The cached embeddings for ``key`` on CPU, or None when absent or unreadable (a warning says why)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = load_torch_file(path, what="text-embedding cache file")
            embeddings = entry["embeddings"]
            if entry.get("key") != key or not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 3:
                raise ValueError("entry does not match its key")
        except Exception as err:  # a torn or foreign file is recomputed, not fatal
            warnings.warn(f"ignoring unreadable text-embedding cache file {str(path)!r}: {err}", stacklevel=2)
            return None
        return embeddings

    def save(self, key: str, embeddings: torch.Tensor, meta: dict[str, Any] | None = None) -> Path:
        """Store ``embeddings`` (T, P, D) under ``key`` atomically; returns the file path."""
        entry = {"key": key, "embeddings": embeddings.detach().to("cpu", torch.float32).contiguous(), **(meta or {})}
        return atomic_write(self.path(key), lambda tmp: torch.save(entry, tmp))


def cached_encode_vocabulary(
    clip_model: Any,
    tokenizer: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str],
    *,
    model_name: str,
    weights_id: str,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> torch.Tensor:
    """:func:`~ovcore.text.encode_vocabulary` behind an on-disk cache, per vocabulary and per class.

    A vocabulary seen before is one file read; otherwise the classes cached by earlier vocabularies are loaded and
    only the new names are encoded (adding one class to a vocabulary encodes one class).

    Args:
        clip_model, tokenizer, class_names, templates, batch_size, progress: as in ``encode_vocabulary``.
        model_name: open_clip architecture name (part of the key).
        weights_id: identity of the weights (part of the key), e.g. :func:`weights_id_of` of the pretrained value.
        cache_dir: cache folder; default :func:`default_cache_dir`.
        device: where to return the embeddings (and to encode on a miss); default the model's device.

    Returns:
        float32 (T, P, D) unit-norm embeddings.
    """
    names, temps = _check_inputs(class_names, templates)
    cache = VocabularyCache(cache_dir)
    key = cache.key(model_name, weights_id, temps, names)
    embeddings = cache.load(key)
    if embeddings is None or embeddings.shape[:2] != (len(names), len(temps)):
        classes = VocabularyCache(cache.cache_dir / "classes")
        meta = {"model": model_name, "weights": weights_id}
        rows = _load_classes(classes, model_name, weights_id, temps, names)
        missing = [name for name in names if name not in rows]
        if missing:  # one batched encoding of the new names only
            new = encode_vocabulary(
                clip_model, tokenizer, missing, temps, batch_size=batch_size, device=device, progress=progress
            )
            for name, emb in zip(missing, new, strict=True):
                rows[name] = emb
                classes.save(classes.key(model_name, weights_id, temps, [name]), emb.unsqueeze(0), meta=meta)
        embeddings = torch.stack([rows[name].to("cpu", torch.float32) for name in names])
        cache.save(key, embeddings, meta=meta)
    return embeddings.to(device if device is not None else _model_device(clip_model))


def _load_classes(
    classes: VocabularyCache, model_name: str, weights_id: str, templates: list[str], names: list[str]
) -> dict[str, torch.Tensor]:
    """The (P, D) embeddings of every class of `names` found in the per-class cache."""
    found: dict[str, torch.Tensor] = {}
    if not classes.cache_dir.is_dir():
        return found
    for name in names:
        emb = classes.load(classes.key(model_name, weights_id, templates, [name]))
        if emb is not None and emb.shape[:2] == (1, len(templates)):
            found[name] = emb[0]
    return found
