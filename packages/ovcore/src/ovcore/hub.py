"""Weights on the Hugging Face Hub: one folder layout for every method, written here and read back from a folder or
from ``hf-hub:org/repo[@revision]`` through ``huggingface_hub`` and its cache.

A pretrained folder (and a Hub repository, which is the same folder uploaded) holds three files::

    config.json         {"method": "sed", "preset": "sed_convnext_b_768", "config": {...}, "ovseg_version": "..."}
    model.safetensors   the model's tensors (safetensors only: reading it runs no code, unlike a pickle)
    README.md           the model card: YAML front matter, the metrics the weights were evaluated at, how to load

:func:`save_pretrained` writes it, :func:`load_pretrained` reads it back as ``(method, preset, config, state_dict)``
and :func:`create_from_pretrained` builds the model through the method's ``MethodSpec.create``. Each method's own
``create_*`` function accepts the same sources (``sed.create_sed("hf-hub:org/repo")``).

Resolution honours ``HF_HUB_OFFLINE``: offline, a repository that is not in the cache fails at once with a one-line
``RuntimeError`` naming the repository, the cache folder and the ``hf download`` command that fetches it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "HUB_PREFIX",
    "WEIGHTS_NAME",
    "PretrainedWeights",
    "create_from_pretrained",
    "is_pretrained_source",
    "load_pretrained",
    "load_pretrained_file",
    "locate_pretrained",
    "read_pretrained_config",
    "save_model",
    "save_pretrained",
]

HUB_PREFIX = "hf-hub:"
"""Prefix of a Hub source: ``hf-hub:org/repo`` or ``hf-hub:org/repo@revision`` (branch, tag or commit)."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
LIBRARY_NAME = "ovseg"

# Weight files other libraries write as pickles; reading one can run arbitrary code, so they are named and refused.
_PICKLE_NAMES = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth", "model.pkl", "model.ckpt")
_TRUE = {"1", "ON", "YES", "TRUE"}


class PretrainedWeights(NamedTuple):
    """What :func:`load_pretrained` returns (a plain 4-tuple, so ``method, preset, config, state = ...`` works).

    Attributes:
        method: The method's registered name (``"sed"``).
        preset: The preset the weights were saved from.
        config: The method's config dict as saved (its keys are the method's own).
        state_dict: The tensors of ``model.safetensors`` (CPU).
    """

    method: str
    preset: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]


class _Located(NamedTuple):
    """Local files of a pretrained source, and how to name the source in messages."""

    label: str
    config_path: Path
    weights_path: Path | None


# ------------------------------------------------------------------------------------------------------ sources


def is_pretrained_source(source: Any) -> bool:
    """Whether ``source`` names pretrained weights in the Hub layout: ``hf-hub:...`` or a folder with a config.json.

    Anything else (a preset name, a checkpoint file, a state dict, None) is False.
    """
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        return True
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        return False
    folder = Path(source).expanduser()
    return folder.is_dir() and (folder / CONFIG_NAME).is_file()


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """``"hf-hub:org/repo@rev"`` -> ``("org/repo", "rev")`` (revision None when not given).

    Raises:
        ValueError: not an ``hf-hub:`` source, or an invalid repository id.
    """
    if not source.startswith(HUB_PREFIX):
        raise ValueError(f"{source!r} is not a Hub source; write it as {HUB_PREFIX}org/repo[@revision]")
    repo_id, _, revision = source[len(HUB_PREFIX) :].partition("@")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"{source!r}: invalid Hub repository id ({err}); write it as {HUB_PREFIX}org/repo") from err
    return repo_id, revision or None


def _hub_cache_dir() -> Path:
    # Read the environment now: huggingface_hub reads it once at import, before a test or a user may have set it.
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def _fetch_hint(repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f"`hf download {repo_id}{rev}`"


def _hub_file(source: str, filename: str, *, required: bool = True) -> Path | None:
    """One file of a Hub repository through the cache (downloaded when online and missing).

    Returns None for a file the repository does not have when ``required`` is False.

    Raises:
        RuntimeError: offline (or no network) and not cached: the one-line message names the repository, the cache
            folder and the ``hf download`` command; or another download failure.
        ValueError: no such repository or revision, or (``required``) no such file in it.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo_id, revision = parse_hub_source(source)
    cache = _hub_cache_dir()
    offline = _hub_offline()
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=cache, local_files_only=offline, library_name=LIBRARY_NAME
        )
    except LocalEntryNotFoundError as err:
        if offline and not required and _cached_revision(repo_id, revision, cache) is not None:
            return None  # the snapshot is cached and simply lacks this file
        why = "HF_HUB_OFFLINE=1" if offline else "the Hub could not be reached"
        raise RuntimeError(
            f"{source}: {filename} of Hub repository {repo_id!r} is not in the Hugging Face cache {cache} and {why}; "
            f"fetch it on a machine with internet access with {_fetch_hint(repo_id, revision)} and copy the cache "
            f"(or set HF_HUB_CACHE to it), or pass a local folder"
        ) from err
    except RevisionNotFoundError as err:
        raise ValueError(f"{source}: Hub repository {repo_id!r} has no revision {revision!r}") from err
    except RepositoryNotFoundError as err:
        raise ValueError(
            f"{source}: no Hub repository {repo_id!r} (or it is private or gated: log in with `hf auth login`)"
        ) from err
    except EntryNotFoundError as err:
        if not required:
            return None
        raise ValueError(f"{source}: Hub repository {repo_id!r} has no {filename}") from err
    except (HfHubHTTPError, OSError) as err:
        raise RuntimeError(f"{source}: could not download {filename} of Hub repository {repo_id!r} ({err})") from err
    return Path(path)


def _cached_revision(repo_id: str, revision: str | None, cache: Path) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (a ref or a commit), or None."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    ref = repo_dir / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    snapshot = repo_dir / "snapshots" / commit if commit else None
    return snapshot if snapshot is not None and snapshot.is_dir() else None


def _pickle_in(folder: Path) -> Path | None:
    return next((folder / n for n in _PICKLE_NAMES if (folder / n).is_file()), None)


def _refuse_pickle(label: str, pickle: Path) -> ValueError:
    return ValueError(
        f"{label}: holds {pickle.name} but no {WEIGHTS_NAME}; only safetensors weights are read (a pickle can run "
        f"code when loaded): convert it with save_pretrained() from a trusted environment"
    )


def locate_pretrained(source: str | os.PathLike, *, weights: bool = True) -> _Located:
    """Local paths of the config (and weights) of a folder or ``hf-hub:`` source, downloading what is missing.

    Args:
        source: A folder in the Hub layout or ``hf-hub:org/repo[@revision]``.
        weights: Also resolve ``model.safetensors`` (False reads only the config).

    Raises:
        ValueError: not a pretrained source, no config.json, or pickled weights instead of safetensors.
        RuntimeError: see :func:`_hub_file` (offline and not cached, download failure).
    """
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        return _locate_hub(source, weights=weights)
    folder = Path(source).expanduser()
    label = str(folder)
    if not (folder / CONFIG_NAME).is_file():
        what = "a folder" if folder.is_dir() else "no folder"
        raise ValueError(f"{label}: not a pretrained folder ({what} without {CONFIG_NAME}); use save_pretrained")
    weights_path = folder / WEIGHTS_NAME
    if weights and not weights_path.is_file():
        pickle = _pickle_in(folder)
        if pickle is not None:
            raise _refuse_pickle(label, pickle)
        raise ValueError(f"{label}: has {CONFIG_NAME} but no {WEIGHTS_NAME}; save the folder with save_pretrained")
    return _Located(label, folder / CONFIG_NAME, weights_path if weights else None)


def _locate_hub(source: str, *, weights: bool) -> _Located:
    config_path = _hub_file(source, CONFIG_NAME)
    assert config_path is not None  # required=True never returns None
    if not weights:
        return _Located(source, config_path, None)
    weights_path = _hub_file(source, WEIGHTS_NAME, required=False)
    if weights_path is None:
        for name in _PICKLE_NAMES:
            if _hub_file(source, name, required=False) is not None:
                raise _refuse_pickle(source, Path(name))
        repo_id, _ = parse_hub_source(source)
        raise ValueError(f"{source}: Hub repository {repo_id!r} has {CONFIG_NAME} but no {WEIGHTS_NAME}")
    return _Located(source, config_path, weights_path)


# ------------------------------------------------------------------------------------------------------ reading


def read_pretrained_config(source: str | os.PathLike) -> tuple[str, str, dict[str, Any]]:
    """``(method, preset, config)`` of a pretrained source, reading only its config.json.

    Raises:
        ValueError: not valid JSON, a missing or mistyped key, or a method that is not installed (the message names
            the file and lists the installed methods).
        RuntimeError: a Hub source that is offline and not cached.
    """
    located = locate_pretrained(source, weights=False)
    method, preset, config = _parse_config(located.config_path, located.label)
    _check_method(method, None, preset, located.label)
    return method, preset, config


def _parse_config(path: Path, label: str) -> tuple[str, str, dict[str, Any]]:
    where = f"{label}: {CONFIG_NAME}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a JSON object, not {type(data).__name__}")
    method, preset, config = data.get("method"), data.get("preset"), data.get("config", {})
    if not isinstance(method, str) or not isinstance(preset, str) or not isinstance(config, dict):
        raise ValueError(
            f"{where} needs \"method\" and \"preset\" strings and a \"config\" object (got method={method!r}, "
            f"preset={preset!r}); it was not written by save_pretrained"
        )
    return method, preset, config


def _check_method(found: str, expected: str | None, preset: str, label: str) -> None:
    """The weights' method must be ``expected`` (when a method's own loader asks) or else an installed method."""
    if expected is not None:
        if found != expected:
            raise ValueError(f"{label}: holds {found!r} weights (preset {preset!r}), not {expected!r} weights")
        return
    from ovcore.method import list_methods

    if found not in list_methods():
        raise ValueError(
            f"{label}: {CONFIG_NAME} names method {found!r}, which is not installed; installed methods: "
            f"{list_methods()}"
        )


def _read_safetensors(path: Path, label: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(
            f"{label}: {path.name} is not a readable safetensors file ({err}); re-download it or save it again "
            f"with save_pretrained"
        ) from err


def load_pretrained(source: str | os.PathLike, *, method: str | None = None) -> PretrainedWeights:
    """Read a pretrained folder or ``hf-hub:org/repo[@revision]`` (through the Hub cache).

    Args:
        source: A folder written by :func:`save_pretrained`, or a Hub repository holding one.
        method: When given, the weights must belong to this method.

    Returns:
        ``(method, preset, config, state_dict)``; only JSON and safetensors are read, so no code runs.

    Raises:
        ValueError: a bad config.json, an unknown method or another method than ``method``, pickled weights, or a
            corrupt safetensors file (each message names the source).
        RuntimeError: a Hub source that is offline and not cached (the message names the repository, the cache
            folder and the ``hf download`` command), or a failed download.
    """
    return load_pretrained_file(source, method=method)[0]


def load_pretrained_file(
    source: str | os.PathLike, *, method: str | None = None
) -> tuple[PretrainedWeights, Path]:
    """:func:`load_pretrained`, plus the local path of ``model.safetensors``.

    The path's identity (``ovcore.text.weights_id_of``) keys the on-disk text-embedding cache of the loaded model.
    """
    located = locate_pretrained(source)
    found, preset, config = _parse_config(located.config_path, located.label)
    _check_method(found, method, preset, located.label)
    assert located.weights_path is not None  # locate_pretrained(weights=True) resolves it or raises
    state = _read_safetensors(located.weights_path, located.label)
    return PretrainedWeights(found, preset, config, state), located.weights_path


def create_from_pretrained(source: str | os.PathLike, **overrides: Any) -> Any:
    """Build the model saved in a pretrained folder or Hub repository, whatever its method.

    The method named in config.json builds its preset from the saved config with the saved weights:
    ``get_method(method).create(preset, checkpoint=source, **overrides)`` (each method's ``create`` accepts a
    pretrained source as ``checkpoint``).

    Raises:
        ValueError, RuntimeError: see :func:`load_pretrained`.
    """
    from ovcore.method import get_method

    method, preset, _ = read_pretrained_config(source)
    return get_method(method).create(preset, checkpoint=source, **overrides)


# ------------------------------------------------------------------------------------------------------ writing


def _ovseg_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ovcore")
    except PackageNotFoundError:  # a source tree without installation
        return "0.0.0"


def _plain_state(model: Any) -> dict[str, torch.Tensor]:
    """The tensors to save: ``pretrained_state_dict()`` when the model defines it, else ``state_dict()``."""
    if isinstance(model, Mapping):
        return dict(model)
    if hasattr(model, "pretrained_state_dict"):
        return dict(model.pretrained_state_dict())
    return dict(model.state_dict())


def _safetensors_ready(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that share no memory (safetensors refuses tied or overlapping tensors)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        tensor = value.detach().cpu()
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        # A tied weight (same storage as an earlier entry) or a view of a larger buffer gets its own copy.
        whole = tensor.is_contiguous() and tensor.numel() * tensor.element_size() == storage.nbytes()
        if ptr in seen or not whole:
            tensor = tensor.contiguous().clone()
        else:
            seen.add(ptr)
        out[key] = tensor
    return out


def save_pretrained(
    model: Any,
    folder: str | os.PathLike,
    *,
    method: str,
    preset: str,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    extra_card: str = "",
    metrics_source: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``folder`` (the Hub layout).

    Upload the folder as it is (``hf upload org/repo FOLDER .``) and load it anywhere with
    ``ovcore.method.create_model("hf-hub:org/repo")``.

    Args:
        model: A module (``pretrained_state_dict()`` when it defines one, else ``state_dict()``) or a state dict.
        folder: Output folder (created; existing files of the layout are replaced atomically).
        method: Registered method name.
        preset: The preset the weights belong to.
        config: The method's config dict (JSON-serialisable), applied when the weights are loaded.
        metrics: ``{benchmark: mIoU}`` or ``{benchmark: {metric: value}}`` the weights were evaluated at.
        extra_card: Markdown appended to the model card.
        metrics_source: One line on where the metrics come from (default: evaluated with this repository).
        repo_id: The Hub repository the folder is meant for, shown in the card's loading example.

    Returns:
        The folder.

    Raises:
        ValueError: ``folder`` is a file, or the state dict holds something other than tensors.
    """
    from safetensors.torch import save_file

    from ovcore.files import atomic_write, atomic_write_text, json_safe

    out = Path(folder).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; save_pretrained writes a folder (config.json, {WEIGHTS_NAME}, {CARD_NAME})")
    tensors = _safetensors_ready(_plain_state(model))
    header = {"method": method, "preset": preset, "config": dict(config), "ovseg_version": _ovseg_version()}
    if metrics:
        header["metrics"] = dict(metrics)
    meta = {"format": "pt", "method": method, "preset": preset}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    config_text = json.dumps(json_safe(header), indent=2, allow_nan=False, default=str) + "\n"
    atomic_write_text(out / CONFIG_NAME, config_text)
    card = model_card(
        method, preset, metrics, extra_card=extra_card, metrics_source=metrics_source, repo_id=repo_id
    )
    atomic_write_text(out / CARD_NAME, card)
    return out


def save_model(
    model: Any, folder: str | os.PathLike, *, metrics: Mapping[str, Any] | None = None, **card: Any
) -> Path:
    """:func:`save_pretrained` for a model that describes itself with ``pretrained_info() -> (method, preset,
    config)`` (every method's model does; their ``save_pretrained(folder, metrics=...)`` methods call this).

    Raises:
        ValueError: the model has no ``pretrained_info``.
    """
    if not hasattr(model, "pretrained_info"):
        raise ValueError(f"{type(model).__name__} has no pretrained_info(); call ovcore.hub.save_pretrained instead")
    method, preset, config = model.pretrained_info()
    return save_pretrained(model, folder, method=method, preset=preset, config=config, metrics=metrics, **card)


# ------------------------------------------------------------------------------------------------------ model card


def _metric_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for bench, value in metrics.items():
        figures = value if isinstance(value, Mapping) else {"mIoU": value}
        for name, figure in figures.items():
            text = f"{figure:.2f}" if isinstance(figure, float) else str(figure)
            rows.append((str(bench), str(name), text))
    return rows


def _metrics_section(metrics: Mapping[str, Any] | None, source: str | None) -> str:
    if not metrics:
        return "## Metrics\n\nNot evaluated yet.\n"
    lines = ["## Metrics", "", source or "Evaluated with this repository's evaluation code.", ""]
    lines += ["| Benchmark | Metric | Value |", "|---|---|---|"]
    lines += [f"| {b} | {m} | {v} |" for b, m, v in _metric_rows(metrics)]
    return "\n".join(lines) + "\n"


def model_card(
    method: str,
    preset: str,
    metrics: Mapping[str, Any] | None = None,
    *,
    extra_card: str = "",
    metrics_source: str | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md of a pretrained folder: Hub front matter, metrics table, how to load.

    Args:
        method: Registered method name (a tag of the card).
        preset: The preset the weights belong to.
        metrics: See :func:`save_pretrained`.
        extra_card: Markdown appended at the end.
        metrics_source: One line on where the metrics come from.
        repo_id: The Hub repository shown in the loading example (``ORG/REPO`` when not given).
    """
    repo = repo_id or "ORG/REPO"
    # JSON strings are valid YAML scalars, so names with odd characters stay well-formed front matter.
    tags = ["open-vocabulary-segmentation", "semantic-segmentation", method]
    front = ["---", f"library_name: {LIBRARY_NAME}", "pipeline_tag: image-segmentation", "tags:"]
    front += [f"- {json.dumps(t)}" for t in tags] + ["---", ""]
    body = [
        f"# {preset}",
        "",
        f"`{method}` weights for the preset `{preset}`, in the layout of this repository's `ovcore.hub`: "
        f"`{CONFIG_NAME}` names the method, the preset and its config; `{WEIGHTS_NAME}` holds the weights.",
        "",
        _metrics_section(metrics, metrics_source),
        "## How to load",
        "",
        "```python",
        "from ovcore.method import create_model",
        "",
        f'model = create_model("{HUB_PREFIX}{repo}")  # or the path of a local copy of this folder',
        "```",
        "",
        f"Offline (`HF_HUB_OFFLINE=1`), fetch the repository first with `hf download {repo}`: it is read from the "
        "Hugging Face cache.",
        "",
    ]
    text = "\n".join(front + body)
    return text + (f"\n{extra_card.strip()}\n" if extra_card.strip() else "")
