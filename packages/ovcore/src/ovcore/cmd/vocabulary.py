"""``--vocabulary`` for every command: a comma list, a file, or a dataset's class list by name.

* ``"cat, dog, grass|lawn"``: comma-separated classes; ``|`` joins synonyms of one class (stored as ``"grass, lawn"``,
  the synonym convention of ``ovcore.text``);
* a path to a ``.txt`` file (one class per line; blank lines and ``#`` comments skipped) or a ``.json`` array (strings
  or lists of synonyms);
* a dataset or benchmark name (``ade20k_150``, ``a150``, ``coco_stuff_171``): that dataset's class list.

An existing file wins over a dataset name, and a dataset name over a one-class list.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["check_vocabulary", "parse_class_list", "read_class_file", "resolve_vocabulary"]


def check_vocabulary(names: list[str], option: str = "--vocabulary") -> list[str]:
    """``names`` when usable (``ovcore.text.check_vocabulary``: not empty, no empty name, no duplicate ignoring case
    and spaces); otherwise its ``ValueError`` prefixed with ``option``."""
    from ovcore.text import check_vocabulary as check  # deferred: ovcore.text imports torch

    try:
        return check(names)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def parse_class_list(text: str, option: str = "--vocabulary") -> list[str]:
    """``"cat,dog,grass|lawn"`` -> ``["cat", "dog", "grass, lawn"]``.

    Raises:
        ValueError: no class name, an empty one, or a duplicate.
    """
    names = []
    for item in text.split(","):
        synonyms = [s.strip() for s in item.split("|") if s.strip()]
        if synonyms:
            names.append(", ".join(synonyms))
    return check_vocabulary(names, option)


def read_class_file(path: str | Path, option: str = "--vocabulary") -> list[str]:
    """Class names from a JSON array or a text file (see the module docstring).

    Raises:
        ValueError: unreadable file, bad JSON, a non-string entry, no class name, or a duplicate.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{option}: cannot read the class file {str(p)!r} ({err}); give a UTF-8 text file") from None
    names: list[str] = []
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{option}: {str(p)!r} is not valid JSON ({err}); give an array of class names") from None
        if not isinstance(data, list):
            raise ValueError(f"{option}: {str(p)!r} must hold a JSON array of class names")
        for entry in data:
            if isinstance(entry, list) and all(isinstance(s, str) for s in entry):
                entry = ", ".join(s.strip() for s in entry if s.strip())
            if not isinstance(entry, str):
                raise ValueError(f"{option}: {str(p)!r} has an entry that is not a class name: {entry!r}")
            names.append(entry.strip())
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return check_vocabulary(names, f"{option} {str(p)!r}")


def _dataset_classes(name: str) -> list[str] | None:
    from ovcore.benchmarks import get_benchmark
    from ovcore.data import get_class_names, list_datasets

    if name in list_datasets():
        return get_class_names(name)
    try:
        return get_class_names(get_benchmark(name).dataset)
    except ValueError:
        return None


def resolve_vocabulary(spec: str, option: str = "--vocabulary") -> list[str]:
    """The class names a ``--vocabulary`` value stands for (file, dataset name, or comma list).

    Raises:
        ValueError: an empty value, a file that cannot be read, an empty vocabulary or a duplicate name.
    """
    text = spec.strip()
    if not text:
        raise ValueError(f"{option}: the vocabulary is empty; give 'cat, dog, grass', a class file or a dataset name")
    path = Path(text).expanduser()
    if path.is_file():
        return read_class_file(path, option)
    if "," not in text and "|" not in text:
        names = _dataset_classes(text)
        if names is not None:
            return names
        if path.suffix.lower() in (".txt", ".json"):
            raise ValueError(f"{option}: class file not found: {str(path)!r}")
    return parse_class_list(text, option)
