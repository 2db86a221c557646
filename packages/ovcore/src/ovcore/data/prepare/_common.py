"""Shared machinery of the prepare commands: job lists, idempotent skipping, progress, optional processes, the
per-split loop and its report."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ovcore.data.catalog import default_root
from ovcore.files import remove_stale_temporaries

__all__ = [
    "PrepareReport",
    "Job",
    "SplitJobs",
    "run_jobs",
    "convert_splits",
    "label_jobs",
    "resolve_root",
    "require_dir",
    "require_file",
    "check_splits",
    "read_id_list",
    "remove_stale_outputs",
]

logger = logging.getLogger("ovcore.data.prepare")


@dataclass(frozen=True)
class Job:
    """One unit of conversion work: ``fn(job)`` reads ``inputs`` and writes ``outputs``."""

    inputs: tuple[Path, ...]
    outputs: tuple[Path, ...]
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class SplitJobs:
    """The jobs of one split, the label of its progress bar and the folders they fill (listed in the report)."""

    label: str
    jobs: Sequence[Job]
    outputs: tuple[Path, ...]


@dataclass
class PrepareReport:
    """What a prepare command did: counts of written, skipped (already there) and dropped items."""

    dataset: str
    written: int = 0
    skipped: int = 0
    dropped: int = 0
    outputs: list[Path] = field(default_factory=list)

    def add(self, counts: Counter) -> None:
        self.written += counts.get("written", 0)
        self.skipped += counts.get("skipped", 0)
        self.dropped += counts.get("dropped", 0)

    def __str__(self) -> str:
        where = ", ".join(str(p) for p in self.outputs)
        return (
            f"{self.dataset}: {self.written} written, {self.skipped} already present (skipped), "
            f"{self.dropped} dropped -> {where}"
        )


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The dataset root (default ``$DETECTRON2_DATASETS`` or ``./datasets``); it must exist."""
    path = Path(root) if root is not None else default_root()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset root {path} does not exist; pass --root or set $DETECTRON2_DATASETS")
    return path


def require_dir(path: Path, what: str, how: str) -> Path:
    """Raise ``FileNotFoundError`` naming ``what`` and how to get it when ``path`` is not a folder."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} is missing; {how}")
    return path


def require_file(path: Path, what: str, how: str) -> Path:
    """Raise ``FileNotFoundError`` naming ``what`` and how to get it when ``path`` is not a file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} is missing; {how}")
    return path


def check_splits(splits: Iterable[str], allowed: Sequence[str], command: str) -> list[str]:
    """Validate ``--splits`` values."""
    chosen = list(dict.fromkeys(splits))
    bad = [s for s in chosen if s not in allowed]
    if bad or not chosen:
        raise ValueError(f"{command}: unknown split(s) {bad or '(none)'}; choose from {', '.join(allowed)}")
    return chosen


def read_id_list(path: Path) -> list[str]:
    """The ids of an image-set list (VOC ``ImageSets/*.txt`` style): the first field of every non-blank line."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def run_jobs(
    fn: Callable[[Job], str],
    jobs: Sequence[Job],
    *,
    overwrite: bool = False,
    workers: int = 0,
    desc: str = "",
    progress: bool = True,
) -> Counter:
    """Run ``fn`` on every job whose outputs are not all present (all jobs with ``overwrite``).

    Args:
        fn: picklable top-level function returning ``"written"`` or ``"dropped"``.
        jobs: the work.
        overwrite: redo jobs whose outputs exist.
        workers: processes (``0`` or ``1``: run in this process).
        desc: progress-bar label.
        progress: show a tqdm bar.

    Returns:
        Counter of statuses, including ``"skipped"``.
    """
    pending = [job for job in jobs if overwrite or not all(p.exists() for p in job.outputs)]
    counts: Counter = Counter(skipped=len(jobs) - len(pending))
    if counts["skipped"]:
        logger.info("%s: %d of %d outputs already present, skipped", desc, counts["skipped"], len(jobs))
    bar = tqdm(total=len(pending), desc=desc, disable=not progress or not pending, unit="file")
    if workers > 1 and len(pending) > 1:
        # fork (where available) starts workers at once with everything imported; spawn re-imports torch per worker.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for status in pool.imap_unordered(fn, pending, chunksize=max(1, min(64, len(pending) // (4 * workers)))):
                counts[status] += 1
                bar.update()
    else:
        for job in pending:
            counts[fn(job)] += 1
            bar.update()
    bar.close()
    return counts


def label_jobs(src: Path, dst: Path, how: str) -> list[Job]:
    """One job per ``src/*.png`` writing ``dst/<same name>``; none at all is a FileNotFoundError saying ``how``."""
    jobs = [Job((p,), (dst / p.name,)) for p in sorted(src.glob("*.png"))]
    if not jobs:
        raise FileNotFoundError(f"no *.png label in {src}; {how}")
    return jobs


def remove_stale_outputs(split: SplitJobs) -> int:
    """Delete the hidden temporaries a prepare run killed mid-write left among this split's outputs.

    Every output is written with :func:`ovcore.files.atomic_write`, so a killed run leaves no torn output, only
    ``.<name>.<pid>.<token>.tmp`` files of dead processes, which would otherwise stay in the dataset folders forever.

    Returns:
        How many files were deleted.
    """
    folders = {p.parent for job in split.jobs for p in job.outputs} | {p for p in split.outputs if p.is_dir()}
    removed = sum(len(remove_stale_temporaries(folder)) for folder in sorted(folders))
    if removed:
        logger.info("%s: removed %d temporary files left by an interrupted run", split.label, removed)
    return removed


def convert_splits(
    dataset: str,
    convert: Callable[[Job], str],
    splits: Iterable[SplitJobs],
    *,
    overwrite: bool = False,
    workers: int = 0,
    progress: bool = True,
) -> PrepareReport:
    """Run ``convert`` on the jobs of each split with :func:`run_jobs` (bar ``"<dataset> <label>"``) and sum up.

    ``splits`` is consumed one split at a time, so a generator that checks a split's raw files as it yields it
    fails on a later split only after the earlier ones are written.
    """
    report = PrepareReport(dataset)
    for split in splits:
        remove_stale_outputs(split)
        desc = f"{dataset} {split.label}"
        report.add(run_jobs(convert, split.jobs, overwrite=overwrite, workers=workers, desc=desc, progress=progress))
        report.outputs.extend(split.outputs)
    return report
