"""Image inputs of the ``predict`` commands: files and folders (recursive) in, batches with a progress bar out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ovcore.cmd.errors import check_min

__all__ = ["IMAGE_SUFFIXES", "batched", "collect_images", "output_stems", "progress"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
"""File endings treated as images when a folder is searched."""

T = TypeVar("T")


def collect_images(inputs: Sequence[str | Path], *, recursive: bool = True, option: str = "INPUTS") -> list[Path]:
    """Expand files and folders into image files: a folder's images sorted by path (sub-folders too when
    ``recursive``), files as given.

    Raises:
        ValueError: nothing given, a path that does not exist, or a folder without images.
    """
    if not inputs:
        raise ValueError(f"{option}: give at least one image file or folder")
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                where = "or its sub-folders " if recursive else ""
                raise ValueError(
                    f"{option}: folder {str(path)!r} {where}holds no image files ({' '.join(IMAGE_SUFFIXES)})"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{option}: image not found: {str(path)!r}; check the path")
    return files


def output_stems(paths: Sequence[Path], inputs: Sequence[str | Path] = ()) -> list[str]:
    """A distinct output name per image: the path below the input folder it came from with ``/`` -> ``__``
    (``a/x.png`` and ``b/x.png`` stay apart), else the file stem; repeats get ``_1``, ``_2``."""
    roots = [Path(r).expanduser() for r in inputs if Path(r).expanduser().is_dir()]
    seen: dict[str, int] = {}
    stems = []
    for p in paths:
        stem = p.stem
        for root in roots:
            if p.is_relative_to(root):
                stem = "__".join(p.relative_to(root).with_suffix("").parts)
                break
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        stems.append(stem if n == 0 else f"{stem}_{n}")
    return stems


def batched(items: Sequence[T], batch_size: int, option: str = "--batch-size") -> Iterator[list[T]]:
    """Consecutive batches of at most ``batch_size`` items.

    Raises:
        ValueError: ``batch_size < 1`` (naming ``option``).
    """
    check_min(option, batch_size, 1)
    for start in range(0, len(items), batch_size):
        yield list(items[start : start + batch_size])


def progress(iterable: Sequence[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """``iterable`` with a tqdm progress bar on stderr (plain iteration when ``enabled`` is False)."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit="img", dynamic_ncols=True, leave=False)
