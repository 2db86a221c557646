"""Reading and writing CLIP state dicts without unpickling arbitrary objects.

Supported files: ``.safetensors`` (safetensors), ``.bin`` / ``.pt`` / ``.pth`` (``ovcore.safe_load.load_torch_file``:
``torch.load(weights_only=True)`` plus numpy arrays), and TorchScript archives such as OpenAI's original
``ViT-B-16.pt`` (only their tensors are kept, read by ``ovcore.safe_load`` without compiling their code). Training
checkpoints that wrap the weights (``{"state_dict": ...}``, ``{"model": ...}``, DDP ``module.`` prefixes, or a whole
SED model whose CLIP sits under ``sem_seg_head.predictor.clip_model.``) are unwrapped.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ovcore.files import atomic_write
from ovcore.safe_load import load_torch_file, load_torchscript_tensors

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "read_state_dict",
    "extract_clip_state_dict",
    "load_clip_weights",
    "save_clip_weights",
]

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

# Entries of OpenAI's TorchScript archives that are hyper-parameters, not weights.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_WRAPPER_KEYS = ("state_dict", "model", "module")
_MAX_LISTED = 8


def _check_suffix(path: Path) -> None:
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"unsupported checkpoint file {str(path)!r}: expected one of {', '.join(CHECKPOINT_SUFFIXES)}")


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        # TorchScript archives carry compiled code next to the tensors; torch.save archives do not.
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict on CPU.

    Wrappers (``state_dict`` / ``model`` keys) are removed and a ``module.`` prefix is stripped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unsupported suffix, corrupt file, non-tensor content refused by ``weights_only=True``, or no
            state dict inside; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    _check_suffix(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: object = load_file(str(path), device="cpu")
        elif _is_torchscript_archive(path):
            raw = load_torchscript_tensors(path, what="checkpoint")  # OpenAI's archives, read without their code
        else:
            raw = load_torch_file(path, what="checkpoint")
    except Exception as err:  # torch / safetensors raise several unrelated types for bad files
        raise ValueError(
            f"could not read checkpoint {str(path)!r}: the file is corrupt or holds non-tensor objects "
            f"(loaded with torch.load(weights_only=True) / safetensors; re-save only the state dict). Cause: "
            f"{type(err).__name__}: {err}"
        ) from err
    return _unwrap(raw, path)


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    state = raw
    # Training checkpoints nest the weights under "state_dict" / "model" (detectron2), sometimes twice.
    while isinstance(state, Mapping) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"no state dict found in checkpoint {str(path)!r} (top-level type {type(raw).__name__})")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    others = [k for k in state if k not in tensors and k not in _OPENAI_EXTRA_KEYS]
    if others:
        raise ValueError(
            f"checkpoint {str(path)!r} mixes tensors with other entries ({_head(others)}); "
            f"expected a state dict or a {{'state_dict': ...}} / {{'model': ...}} wrapper"
        )
    return {k.removeprefix("module."): v for k, v in tensors.items() if k not in _OPENAI_EXTRA_KEYS}


def _head(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def extract_clip_state_dict(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Select the CLIP weights of ``model`` out of ``state``, removing an outer prefix if there is one.

    A CLIP always has a top-level ``logit_scale``; when the state dict has exactly one ``<prefix>logit_scale`` key
    and the plain names do not match, everything under ``<prefix>`` is taken (e.g. a SED checkpoint).
    """
    expected = model.state_dict().keys()
    if "logit_scale" in state or not expected:
        return dict(state)
    prefixes = {k[: -len("logit_scale")] for k in state if k.endswith(".logit_scale")}
    if len(prefixes) != 1:
        return dict(state)
    prefix = prefixes.pop()
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_clip_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
) -> None:
    """Load a checkpoint file (or an in-memory state dict) into an open_clip model, in place.

    ViT positional embeddings of another grid size are resized (open_clip's bicubic rule) and a 0-d/1-d
    ``logit_scale`` mismatch is reshaped, as open_clip's own loader does.

    Args:
        model: the open_clip model to fill.
        source: checkpoint path (see :func:`read_state_dict`) or state dict.
        strict: raise on missing or unexpected keys (shape mismatches always raise).

    Raises:
        ValueError: the weights do not fit the model; the message names the file and lists the offending keys.
    """
    from open_clip.model import resize_pos_embed

    name = repr(str(source)) if not isinstance(source, Mapping) else "<state dict>"
    state = read_state_dict(source) if not isinstance(source, Mapping) else {k: v for k, v in source.items()}
    state = extract_clip_state_dict(state, model)
    own = model.state_dict()
    if "logit_scale" in state and "logit_scale" in own and state["logit_scale"].shape != own["logit_scale"].shape:
        state["logit_scale"] = state["logit_scale"].reshape(own["logit_scale"].shape)
    resize_pos_embed(state, model)
    # TorchScript archives also store non-persistent buffers (the text attention mask); they are rebuilt, not loaded
    transient = {n for n, _ in model.named_buffers()} - set(own)
    state = {k: v for k, v in state.items() if k not in transient}

    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_head(mismatched)})")
    if strict and missing:
        problems.append(f"{len(missing)} missing keys ({_head(missing)})")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_head(unexpected)})")
    if problems:
        raise ValueError(f"checkpoint {name} does not fit the model: " + "; ".join(problems))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def save_clip_weights(model: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Write a model's state dict to ``path`` (format from the suffix), atomically.

    ``.safetensors`` uses safetensors; ``.bin`` / ``.pt`` / ``.pth`` use ``torch.save`` of a plain tensor dict, so
    the file loads back with ``weights_only=True``.
    """
    path = Path(path)
    _check_suffix(path)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    # safetensors refuses shared or strided storage, so every tensor gets its own contiguous copy
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}

    def write(tmp: Path) -> None:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(tmp))
        else:
            torch.save(tensors, tmp)

    atomic_write(path, write)
    return path
