"""Registry of the CLIP weights the methods use, and where open_clip keeps them on disk.

The entries mirror open_clip's own pretrained table (``open_clip/pretrained.py``); other open_clip tags still work
through :func:`get_pretrained_weights`, which falls back to that table. Resolution never downloads when the Hugging
Face hub is offline (``HF_HUB_OFFLINE=1``): a missing file fails at once with the path where it is expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

__all__ = [
    "ClipWeights",
    "list_pretrained",
    "get_pretrained_weights",
    "expected_weight_paths",
    "find_cached_weights",
    "resolve_pretrained",
    "hf_hub_cache_dir",
    "is_hub_offline",
]

_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class ClipWeights:
    """One pretrained CLIP checkpoint: where open_clip fetches it and how its images are normalised.

    Attributes:
        model: open_clip model (architecture) name.
        tag: open_clip pretrained tag.
        hf_hub: ``"org/repo/"`` (default open_clip file names) or ``"org/repo/filename"``, as in open_clip.
        url: direct download URL (used by open_clip only when the hub is unavailable).
        quick_gelu: whether the weights were trained with QuickGELU (OpenAI models).
        mean: per-channel image mean in 0..1.
        std: per-channel image std in 0..1.
        used_by: which method of this repository uses the weights (documentation only).
    """

    model: str
    tag: str
    hf_hub: str = ""
    url: str = ""
    quick_gelu: bool = False
    mean: tuple[float, float, float] = OPENAI_DATASET_MEAN
    std: tuple[float, float, float] = OPENAI_DATASET_STD
    used_by: str = field(default="", compare=False)

    @property
    def repo_id(self) -> str:
        return os.path.split(self.hf_hub)[0] if self.hf_hub else ""

    def hf_filenames(self) -> list[str]:
        """File names open_clip tries in the hub repo, in its order (safetensors alternative first)."""
        if not self.hf_hub:
            return []
        filename = os.path.split(self.hf_hub)[1]
        if not filename:
            return [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            return [filename[:-4] + ".safetensors", filename]
        return [filename]


# The three checkpoints the methods use (facts from open_clip 3.3's pretrained table and the specs).
_REGISTRY: dict[tuple[str, str], ClipWeights] = {
    (w.model, w.tag): w
    for w in (
        ClipWeights(
            "convnext_base_w_320",
            "laion_aesthetic_s13b_b82k",
            hf_hub="laion/CLIP-convnext_base_w_320-laion_aesthetic-s13B-b82K/",
            used_by="SED ConvNeXt-B",
        ),
        ClipWeights(
            "convnext_large_d_320",
            "laion2b_s29b_b131k_ft_soup",
            hf_hub="laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup/",
            used_by="SED ConvNeXt-L",
        ),
        ClipWeights(
            "ViT-B-16",
            "openai",
            hf_hub="timm/vit_base_patch16_clip_224.openai/",
            url=(
                "https://openaipublic.azureedge.net/clip/models/"
                "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"
            ),
            quick_gelu=True,
            used_by="CLIP-ZSS teacher",
        ),
    )
}


def _clean_tag(tag: str) -> str:
    # open_clip normalises tags the same way (lower case, '-' -> '_')
    return tag.lower().replace("-", "_")


def list_pretrained(as_str: bool = False) -> list[tuple[str, str]] | list[str]:
    """The (model, tag) pairs of the registry, like ``open_clip.list_pretrained``.

    Args:
        as_str: return ``"model:tag"`` strings instead of tuples.
    """
    keys = list(_REGISTRY)
    return [f"{m}:{t}" for m, t in keys] if as_str else keys


def get_pretrained_weights(model: str, tag: str) -> ClipWeights | None:
    """Registry entry for ``model``/``tag``, else open_clip's entry, else None."""
    tag = _clean_tag(tag)
    if (model, tag) in _REGISTRY:
        return _REGISTRY[(model, tag)]
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model, tag)
    if not cfg:
        return None
    return ClipWeights(
        model=model,
        tag=tag,
        hf_hub=cfg.get("hf_hub", ""),
        url=cfg.get("url", ""),
        quick_gelu=bool(cfg.get("quick_gelu", False)),
        mean=tuple(cfg.get("mean", OPENAI_DATASET_MEAN)),
        std=tuple(cfg.get("std", OPENAI_DATASET_STD)),
    )


def is_hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, read now rather than at hub import."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def hf_hub_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The hub cache root open_clip downloads into (``cache_dir``, else ``$HF_HUB_CACHE`` / ``$HF_HOME/hub``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def expected_weight_paths(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every path where open_clip would keep (or look for) the weights of ``model``/``tag``.

    Hub files live at ``<hub cache>/models--<org>--<repo>/snapshots/<revision>/<file>``; the ``<revision>`` part is
    written literally here because it is a commit hash only known after a download. URL downloads go to
    ``cache_dir`` (default ``~/.cache/clip``).

    Raises:
        ValueError: unknown model/tag pair.
    """
    weights = get_pretrained_weights(model, tag)
    if weights is None:
        raise ValueError(f"unknown pretrained tag {tag!r} for CLIP model {model!r}")
    paths = []
    if weights.hf_hub:
        repo_dir = hf_hub_cache_dir(cache_dir) / ("models--" + weights.repo_id.replace("/", "--"))
        paths += [repo_dir / "snapshots" / "<revision>" / name for name in weights.hf_filenames()]
    if weights.url:
        url_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "clip"
        paths.append(url_dir / os.path.basename(weights.url))
    return paths


def find_cached_weights(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The local file holding ``model``/``tag`` if it is already downloaded, else None (never touches the network)."""
    from huggingface_hub import try_to_load_from_cache

    weights = get_pretrained_weights(model, tag)
    if weights is None:
        raise ValueError(f"unknown pretrained tag {tag!r} for CLIP model {model!r}")
    for filename in weights.hf_filenames():
        found = try_to_load_from_cache(weights.repo_id, filename, cache_dir=hf_hub_cache_dir(cache_dir))
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    if weights.url:
        path = expected_weight_paths(model, tag, cache_dir)[-1]
        if path.is_file():
            return path
    return None


def _missing_message(model: str, tag: str, cache_dir: str | os.PathLike | None, reason: str) -> str:
    weights = get_pretrained_weights(model, tag)
    paths = "\n  ".join(str(p) for p in expected_weight_paths(model, tag, cache_dir))
    hint = ""
    if weights is not None and weights.hf_hub:
        hint = (
            f"\nFetch it on a machine with internet access, e.g. "
            f"`hf download {weights.repo_id} {weights.hf_filenames()[-1]}`, and copy the hub cache, "
            f"or pass the file itself as pretrained=PATH."
        )
    return (
        f"CLIP weights for model {model!r} with pretrained tag {tag!r} {reason}. Expected at one of:\n  {paths}{hint}"
    )


def resolve_pretrained(model: str, tag: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Local path of the weights of ``model``/``tag``, downloading them through open_clip when the hub is online.

    Raises:
        ValueError: unknown model/tag pair.
        RuntimeError: the weights are not cached and the hub is offline, or the download failed; the message names
            the model, the tag and the expected path.
    """
    found = find_cached_weights(model, tag, cache_dir)
    if found is not None:
        return found
    if is_hub_offline():
        raise RuntimeError(_missing_message(model, tag, cache_dir, "are not in the local cache and HF_HUB_OFFLINE=1"))
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(model, _clean_tag(tag)) or _as_open_clip_cfg(get_pretrained_weights(model, tag))
    try:
        target = download_pretrained(cfg, cache_dir=None if cache_dir is None else str(cache_dir))
    except Exception as err:  # the hub client raises many types; the message is what matters here
        raise RuntimeError(_missing_message(model, tag, cache_dir, f"could not be downloaded ({err})")) from err
    if not target or not os.path.isfile(target):
        raise RuntimeError(_missing_message(model, tag, cache_dir, "could not be downloaded"))
    return Path(target)


def _as_open_clip_cfg(weights: ClipWeights | None) -> dict:
    if weights is None:
        return {}
    return {"hf_hub": weights.hf_hub, "url": weights.url}
