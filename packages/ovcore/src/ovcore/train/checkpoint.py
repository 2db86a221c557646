"""Atomic checkpoints, a keep-last-N rotation, and capture / restore of every RNG.

A checkpoint is written to a hidden temporary file in the destination directory, flushed and fsync'ed, then renamed
over the final name with ``os.replace`` (atomic on POSIX within one filesystem), and the directory is fsync'ed.
A reader therefore sees either no file or a complete one, and a crash (or ``SIGKILL``) mid-save leaves the previous
checkpoints untouched. Everything stored is plain data and tensors, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ovcore.files import atomic_write

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ovcore.train/1"
"""Value of the ``format`` key of every training checkpoint."""

_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` so that ``path`` is either the old file or the complete new one.

    Args:
        obj: Anything ``torch.save`` accepts.
        path: Destination; its directory is created if needed.

    Returns:
        The destination path.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write, durable=True)


class Checkpointer:
    """Numbered checkpoints ``ckpt_0001000.pt`` in one directory, keeping the newest ``keep_last``.

    Args:
        directory: Where checkpoints live (created on the first save).
        keep_last: How many to keep; 0 keeps all.
    """

    def __init__(self, directory: str | os.PathLike, keep_last: int = 3):
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def path_for(self, iteration: int) -> Path:
        """File name of the checkpoint at ``iteration``."""
        return self.directory / f"ckpt_{iteration:07d}.pt"

    @staticmethod
    def iteration_of(path: str | os.PathLike) -> int:
        """The iteration encoded in a checkpoint file name."""
        m = _NAME.match(Path(path).name)
        if m is None:
            raise ValueError(f"{path} is not named like a checkpoint (ckpt_<iteration>.pt)")
        return int(m.group(1))

    def list(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint, or None."""
        found = self.list()
        return found[-1] if found else None

    def remove_stale_temporaries(self) -> None:
        """Delete temporary files left by a process killed while saving."""
        if self.directory.is_dir():
            for p in self.directory.glob(".ckpt_*.pt.tmp*"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def save(self, state: dict[str, Any], iteration: int) -> Path:
        """Atomically write ``state`` as the checkpoint of ``iteration``, then drop the oldest beyond ``keep_last``."""
        path = atomic_save(state, self.path_for(iteration))
        if self.keep_last > 0:
            for old in self.list()[: -self.keep_last]:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :class:`Checkpointer` (or any plain state dict) with ``weights_only=True``."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_model_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> Any:
    """Load model weights from a training checkpoint (its ``model`` entry) or from a plain state dict file.

    Returns:
        ``model.load_state_dict``'s result (missing and unexpected keys).
    """
    state = load_checkpoint(path)
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        state = state["model"]
    return model.load_state_dict(state, strict=strict)


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's ``random``, NumPy's global RNG, torch's CPU RNG and every CUDA RNG (plain data)."""
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"key": key.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", np.asarray(n["key"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:
            logger.warning(
                "checkpoint has %d CUDA RNG states for %d devices; CUDA RNGs not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )
