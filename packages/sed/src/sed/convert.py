"""Load the released SED weights (detectron2 ``.pth``) into this package's model, and the `sed-convert` CLI.

Official layout (detectron2 checkpoints of ``xb534/SED``): ``checkpoint["model"]`` holds
``sem_seg_head.predictor.clip_model.*`` (the whole open_clip CLIP, text tower included) and
``sem_seg_head.predictor.transformer.*`` (the decoder). This package keeps the official module names below those
prefixes, except for the named sub-layers of the decoder's blocks (`sed.layers.OFFICIAL_SUBLAYER_NAMES`, e.g.
``conv.double_conv.0`` -> ``conv.conv1``), so conversion is a prefix swap plus those renames, followed by a strict check
of every key and shape against the target preset::

    sem_seg_head.predictor.clip_model.<k>   ->  encoder.clip.<k>
    sem_seg_head.predictor.transformer.<k>  ->  decoder.<k>   (then sed.layers.rename_official_key)
"""

from __future__ import annotations

import functools
import os
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sed.layers import rename_official_key

__all__ = [
    "OFFICIAL_PREFIXES",
    "VARIANTS",
    "convert_official_checkpoint",
    "expected_shapes",
    "infer_variant",
    "load_sed_checkpoint",
    "read_checkpoint",
    "write_hub_folder",
    "main",
]

OFFICIAL_PREFIXES = {
    "sem_seg_head.predictor.clip_model.": "encoder.clip.",
    "sem_seg_head.predictor.transformer.": "decoder.",
}
VARIANTS = {"b": "sed_convnext_b_768", "l": "sed_convnext_l_768"}
_STEM_KEY = "sem_seg_head.predictor.clip_model.visual.trunk.stem.0.weight"
_STEM_WIDTH = {128: "b", 192: "l"}


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint without running code from it (``ovcore.safe_load``), or a safetensors file.

    ``torch.save`` files (the official detectron2 ``model_final.pth``, files saved from this package) and
    detectron2-style ``.pkl`` pickles may hold tensors, builtin containers and numpy arrays; anything else is refused.

    Raises:
        FileNotFoundError: missing file.
        ValueError: the file names any other Python object (reading it could run code); the message names the file.
    """
    from ovcore.safe_load import load_pickle_file, load_torch_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    if path.suffix == ".pkl" and not zipfile.is_zipfile(path):
        return load_pickle_file(path, what="SED checkpoint")  # detectron2's own pickle format
    return load_torch_file(path, what="SED checkpoint")


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
            return rename_official_key(new + key[len(old) :])
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
    # Checkpoints saved by this package before its blocks had named sub-layers use the official names too.
    state = {rename_official_key(k): v for k, v in state.items()}
    _check(state, shapes, "checkpoint")
    model.load_state_dict(state, strict=True)


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike, preset: str | None = None) -> Path:
    """Write a converted state dict as ``.safetensors`` or a ``.pth`` holding ``{"model": state, "preset": ...}``."""
    from ovcore.files import atomic_write

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in state.items()}
        # Atomic: a full disk or a kill mid-write leaves no torn file that a later load would trust.
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"preset": preset or ""}))
    return atomic_write(path, lambda tmp: torch.save({"model": dict(state), "preset": preset}, tmp))


def main(argv: list[str] | None = None) -> int:
    """``sed-convert OFFICIAL.pth [OUT] [--hub-folder DIR] [--variant b|l]`` (the parser is :mod:`sed.cli.convert`)."""
    from sed.cli.convert import main as convert_main

    return convert_main(argv)


def convert_command(source: str, target: str | None, variant: str | None, hub_folder: str | None = None) -> None:
    """Body of ``sed-convert``: check the paths, convert, write atomically (a file and / or a Hub folder)."""
    from ovcore.cmd.errors import UsageError, check_output_dir, require_file
    from ovcore.train.checkpoint import UNREADABLE_ERRORS, unreadable_file_error

    require_file(source, "INPUT")
    if target is None and hub_folder is None:
        raise UsageError("give OUTPUT (a .safetensors / .pth file), --hub-folder DIR, or both")
    output = None if target is None else _check_output_file(target)
    hub = None if hub_folder is None else check_output_dir(hub_folder, "--hub-folder")
    try:
        raw = _model_dict(read_checkpoint(source))
    except UNREADABLE_ERRORS as err:
        raise UsageError(f"INPUT {unreadable_file_error(source, err)}; give the released SED .pth") from err
    variant = variant or infer_variant(raw)
    state = convert_official_checkpoint(raw, variant)
    preset = VARIANTS.get(variant.lower(), variant)
    written = []
    if output is not None:
        written.append(save_state_dict(state, output, preset))
    if hub is not None:
        written.append(write_hub_folder(state, hub, preset))
    for out in written:
        print(f"converted {len(state)} tensors ({preset}) -> {out}")  # noqa: T201 - CLI output
        print(f"load with: sed.create_sed({preset!r}, checkpoint={str(out)!r})")  # noqa: T201
    if hub is not None:
        print(f"publish with: hf upload ORG/REPO {hub} .  (then sed.create_sed('hf-hub:ORG/REPO'))")  # noqa: T201


def _check_output_file(target: str) -> Path:
    from ovcore.cmd.errors import UsageError, check_output_dir

    output = Path(target).expanduser()
    if output.suffix not in (".safetensors", ".pth", ".pt"):
        raise UsageError(f"OUTPUT {output}: unknown file type {output.suffix!r}; name it *.safetensors or *.pth")
    if output.is_dir():
        raise UsageError(f"OUTPUT {output} is a folder; give a file name ending in .safetensors or .pth")
    check_output_dir(output.parent, "OUTPUT's folder")
    return output


def write_hub_folder(state: Mapping[str, torch.Tensor], folder: str | os.PathLike, preset: str) -> Path:
    """Write converted official weights in the Hub layout of ``ovcore.hub`` (config.json, model.safetensors,
    README.md), with the paper's figures for the preset (its config's ``extra["paper_miou"]``) in the model card.

    One ``hf upload ORG/REPO FOLDER .`` publishes it; ``sed.create_sed("hf-hub:ORG/REPO")`` loads it.
    """
    from ovcore.hub import save_pretrained
    from sed._registry import get_preset_config

    cfg = get_preset_config(preset)
    paper = cfg.extra.get("paper_miou") or None
    note = (
        "These are the figures the SED paper (Xie et al., CVPR 2024) reports for the official checkpoint (mIoU, %), "
        "copied from the preset config; they were not re-measured after conversion."
    )
    card = (
        "## Provenance\n\nConverted by `sed-convert` from the official detectron2 checkpoint released with the SED "
        "paper: the same tensors under this repository's names (every key and shape checked). Check the official "
        "release's license before publishing."
    )
    return save_pretrained(
        dict(state),
        folder,
        method="sed",
        preset=preset,
        config=cfg.to_dict(),
        metrics=paper,
        metrics_source=note if paper else None,
        extra_card=card,
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
