"""Plain-text result tables and number cells shared by every command (``-`` where a value does not apply)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["cell", "format_table"]


def cell(value: Any, digits: int = 1) -> str:
    """A table cell: floats with ``digits`` decimals, ``-`` for None / nan / inf, anything else as ``str``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, int]]) -> str:
    """Rows as an aligned table.

    Args:
        rows: One mapping per row.
        columns: ``(title, key, digits)`` per column; the first column is left-aligned, the others right-aligned.
    """
    cells = [[title for title, _, _ in columns]]
    cells += [[cell(row.get(key), digits) for _, key, digits in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
