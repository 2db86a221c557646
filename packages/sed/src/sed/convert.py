"""Load the released SED weights (detectron2 ``.pth``) into this package's model, and the `sed-convert` CLI.

Official layout (spec §10): ``checkpoint["model"]`` holds ``sem_seg_head.predictor.clip_model.*`` (the whole
open_clip CLIP, text tower included) and ``sem_seg_head.predictor.transformer.*`` (the decoder). This package keeps
the official module names below those prefixes, so conversion is a prefix swap followed by a strict check of every
key and shape against the target preset::

    sem_seg_head.predictor.clip_model.<k>   ->  encoder.clip.<k>
    sem_seg_head.predictor.transformer.<k>  ->  decoder.<k>
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "OFFICIAL_PREFIXES",
    "VARIANTS",
    "convert_official_checkpoint",
    "expected_shapes",
    "infer_variant",
    "load_sed_checkpoint",
    "read_checkpoint",
    "main",
]

OFFICIAL_PREFIXES = {
    "sem_seg_head.predictor.clip_model.": "encoder.clip.",
    "sem_seg_head.predictor.transformer.": "decoder.",
}
VARIANTS = {"b": "sed_convnext_b_768", "l": "sed_convnext_l_768"}
_STEM_KEY = "sem_seg_head.predictor.clip_model.visual.trunk.stem.0.weight"
_STEM_WIDTH = {128: "b", 192: "l"}


def _numpy_globals(names: list[str]) -> list[Any]:
    """numpy's array-pickling helpers (and only numpy's): the named globals plus the dtype classes.

    Raises:
        ValueError: a named global outside numpy.
    """
    import importlib

    import numpy as np

    out: list[Any] = [np.ndarray, np.dtype]
    out += [type(np.dtype(t)) for t in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")]
    for full in names:
        module, _, attr = full.rpartition(".")
        if not (module == "numpy" or module.startswith("numpy.")):
            raise ValueError(f"not a numpy global: {full}")
        out.append(getattr(importlib.import_module(module), attr))
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    out += [core.multiarray._reconstruct, core.multiarray.scalar]
    return out


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely: ``torch.load(weights_only=True)`` or safetensors.

    detectron2 checkpoints may hold numpy arrays (e.g. converted weights); the numpy globals needed to rebuild
    them, and only those, are allow-listed on a second attempt.

    Raises:
        FileNotFoundError: missing file.
        ValueError: the pickle needs globals other than numpy's (refused: that would execute arbitrary code).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as first_error:
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as err:  # e.g. a legacy (non-zip) pickle, which cannot be inspected safely
            raise ValueError(
                f"{str(path)!r} cannot be read with weights_only=True and is not a torch.save archive whose pickle "
                f"globals can be checked against the allowlist: {first_error}"
            ) from err
        try:
            allowed = _numpy_globals(needed)
        except (ValueError, ImportError, AttributeError) as err:
            raise ValueError(
                f"{str(path)!r} needs pickle globals outside the safe allowlist ({needed}); refusing to unpickle it. "
                "Re-save it as a plain tensor state dict in a trusted environment."
            ) from err
        with torch.serialization.safe_globals(allowed):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as err:
                raise ValueError(f"could not read {str(path)!r} safely: {err}") from first_error


def _to_tensor(key: str, value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is an ovcore dependency
        return None
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return None


def _unwrap(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict inside a ``{"model": ...}`` (detectron2) or ``{"state_dict": ...}`` wrapper, else ``obj``."""
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            return obj[key]
    return obj


def _model_dict(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a detectron2 / training checkpoint (numpy arrays converted)."""
    state = _unwrap(obj)
    out: dict[str, torch.Tensor] = {}
    skipped = []
    for key, value in state.items():
        tensor = _to_tensor(key, value)
        if tensor is None:
            skipped.append(key)
        else:
            out[key[len("module.") :] if key.startswith("module.") else key] = tensor
    if skipped:
        warnings.warn(f"ignoring non-tensor checkpoint entries: {skipped[:10]}", stacklevel=3)
    return out


@functools.lru_cache(maxsize=8)
def _expected(preset: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from sed._registry import create_sed

    model = create_sed(preset, pretrained_clip=None, device="meta")
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def expected_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Our state-dict keys and shapes for a variant ('b', 'l' or a preset name), from a meta-device model."""
    return dict(_expected(VARIANTS.get(variant.lower(), variant)))


def infer_variant(state: Mapping[str, Any]) -> str:
    """'b' or 'l' from the width of the official CLIP stem (``state`` may be the whole wrapped checkpoint)."""
    stem = _unwrap(state).get(_STEM_KEY)
    width = None if stem is None else int(stem.shape[0])
    if width not in _STEM_WIDTH:
        raise ValueError(
            f"cannot tell the SED variant: {_STEM_KEY} has shape "
            f"{None if stem is None else tuple(stem.shape)}; pass variant='b' or 'l'"
        )
    return _STEM_WIDTH[width]


def _rename(key: str) -> str | None:
    for old, new in OFFICIAL_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _check(state: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, ...]], what: str) -> None:
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    wrong = sorted(k for k in set(state) & set(shapes) if tuple(state[k].shape) != tuple(shapes[k]))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:5]})")
        if wrong:
            parts.append(
                "shape mismatches: "
                + ", ".join(f"{k} {tuple(state[k].shape)} != {tuple(shapes[k])}" for k in wrong[:5])
            )
        raise ValueError(f"{what} does not fit: " + "; ".join(parts))


def convert_official_checkpoint(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any], variant: str | None = None
) -> dict[str, torch.Tensor]:
    """Map an official SED checkpoint onto this package's state-dict names, checking every key and shape.

    Args:
        path_or_state_dict: the detectron2 ``.pth`` (or its loaded dict, with or without the ``model`` key).
        variant: 'b', 'l' or a preset name whose shapes to check against; None infers 'b' / 'l' from the stem.

    Returns:
        a state dict for `SED.load_state_dict` (keys ``encoder.clip.*`` and ``decoder.*``).

    Raises:
        ValueError: a key outside the two official prefixes, missing keys or shape mismatches (all listed).
    """
    obj = path_or_state_dict
    raw = _model_dict(read_checkpoint(obj) if isinstance(obj, (str, os.PathLike)) else obj)
    variant = infer_variant(raw) if variant is None else variant
    converted: dict[str, torch.Tensor] = {}
    foreign = []
    for key, value in raw.items():
        new = _rename(key)
        if new is None:
            foreign.append(key)
        else:
            converted[new] = value
    if foreign:
        raise ValueError(f"{len(foreign)} checkpoint keys are outside {list(OFFICIAL_PREFIXES)}: {foreign[:5]}")
    _check(converted, expected_shapes(variant), f"official checkpoint for variant {variant!r}")
    return converted


def load_sed_checkpoint(model: nn.Module, checkpoint: str | os.PathLike | Mapping[str, Any]) -> None:
    """Load an official checkpoint or one saved from this package (``.pth`` / ``.safetensors`` / dict) strictly."""
    obj = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    state = _model_dict(obj)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if any(k.startswith(tuple(OFFICIAL_PREFIXES)) for k in state):
        state = {_rename(k) or k: v for k, v in state.items()}
    _check(state, shapes, "checkpoint")
    model.load_state_dict(state, strict=True)


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike, preset: str | None = None) -> Path:
    """Write a converted state dict as ``.safetensors`` or a ``.pth`` holding ``{"model": state, "preset": ...}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"preset": preset or ""})
    else:
        torch.save({"model": dict(state), "preset": preset}, path)
    return path


def main(argv: list[str] | None = None) -> int:
    """`sed-convert OFFICIAL.pth OUT.(safetensors|pth) [--variant b|l]`."""
    parser = argparse.ArgumentParser(
        prog="sed-convert", description="Convert an official SED detectron2 checkpoint to this package's layout."
    )
    parser.add_argument("input", help="official checkpoint (.pth with a 'model' key)")
    parser.add_argument("output", help="output file: .safetensors or .pth")
    parser.add_argument("--variant", default=None, help="'b', 'l' or a preset name (default: inferred)")
    args = parser.parse_args(argv)
    raw = _model_dict(read_checkpoint(args.input))
    variant = args.variant or infer_variant(raw)
    state = convert_official_checkpoint(raw, variant)
    preset = VARIANTS.get(variant.lower(), variant)
    out = save_state_dict(state, args.output, preset)
    print(f"converted {len(state)} tensors ({preset}) -> {out}")  # noqa: T201 - CLI output
    print(f"load with: sed.create_sed({preset!r}, checkpoint={str(out)!r})")  # noqa: T201
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
