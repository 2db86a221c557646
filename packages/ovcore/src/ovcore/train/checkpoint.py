"""Atomic checkpoints, a keep-last-N rotation, and capture / restore of every RNG.

A checkpoint is written to a hidden temporary file in the destination directory, flushed and fsync'ed, then renamed
over the final name with ``os.replace`` (atomic on POSIX within one filesystem), and the directory is fsync'ed.
A reader therefore sees either no file or a complete one, and a crash (or ``SIGKILL``) mid-save leaves the previous
checkpoints untouched. Everything stored is plain data and tensors, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ovcore.files import atomic_write, remove_stale_temporaries
from ovcore.safe_load import DamagedFileError

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

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files of checkpoints whose writer was killed while saving; returns them."""
        return remove_stale_temporaries(self.directory, "ckpt_*.pt")

    def save(self, state: dict[str, Any], iteration: int) -> Path:
        """Atomically write ``state`` as the checkpoint of ``iteration``, then drop the oldest beyond ``keep_last``."""
        path = atomic_save(state, self.path_for(iteration))
        if self.keep_last > 0:
            for old in self.list()[: -self.keep_last]:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        return path


UNREADABLE_ERRORS: tuple[type[BaseException], ...] = (
    DamagedFileError, pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, AttributeError
)
"""What a reader raises for a damaged or foreign file: ``ovcore.safe_load``'s DamagedFileError, and what a plain
``torch.load`` raises (the safe loader's UnsafeFileError refusals are not among them)."""


def unreadable_file_error(path: str | os.PathLike, err: BaseException, what: str = "checkpoint") -> ValueError:
    """A one-sentence ValueError for a file ``torch.load`` could not read, naming it and saying what is wrong."""
    return ValueError(f"{path} is not a readable {what}: {_unreadable_reason(err)}")


def _unreadable_reason(err: BaseException) -> str:
    # torch's own messages are long, and one of them advises turning weights-only off (running the file's code): say
    # what is wrong with the file instead.
    damaged = isinstance(err, DamagedFileError)
    if damaged and err.__cause__ is not None:
        err = err.__cause__  # the reader's own error says best how the file is damaged
    text = str(err)
    if isinstance(err, EOFError) or "Ran out of input" in text:
        return "the file is empty or cut short"
    if "central directory" in text or "zip archive" in text or isinstance(err, zipfile.BadZipFile):
        return "the file is truncated or corrupted (an incomplete copy, or a run killed while writing it)"
    if damaged:
        return "the file is truncated or corrupted, or not a torch file (re-download or re-save it)"
    if "Unsupported global" in text or "Unsupported class" in text:
        return "it holds Python objects other than tensors and plain data, refused because loading them could run code"
    if isinstance(err, pickle.UnpicklingError) or "invalid load key" in text or "weights_only" in text:
        return "it is not a torch checkpoint (unreadable data)"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first[:200]


def state_dict_mismatch(err: BaseException) -> str:
    """One line saying why ``load_state_dict`` refused a state: its first missing / unexpected key or size mismatch.

    torch's message starts with a line naming only the module class ("Error(s) in loading state_dict for X:") and
    then lists every difference, one per line: the first difference is kept, cut to 300 characters.
    """
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    details = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    first = (details or lines or [type(err).__name__])[0]
    return first[:300]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :class:`Checkpointer` (or any plain state dict) with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a damaged, truncated or foreign file (the message says which, and names the file).
    """
    from ovcore.safe_load import load_torch_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such checkpoint file", str(path))
    try:
        return load_torch_file(path, map_location=map_location, what="checkpoint")
    except DamagedFileError as err:  # a refusal (UnsafeFileError) already names the file and what to do
        raise unreadable_file_error(path, err) from err


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
