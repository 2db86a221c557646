"""Every citation in the repository must be one a reader can follow.

Comments, docstrings, READMEs and tests cite paper sections, official code by file name, external configs or a
README section of this repository. They must not cite implementation notes that only the authors had (private
spec files, their section numbers, or paths outside the repository). This test scans every text file that
git tracks or would add (ignored files excluded).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Citations of documents a user of the repository does not have. Built from pieces so this file does not match.
_PRIVATE = [
    r"spec\s*§",
    r"spec\s+appendix",
    r"spec\s+sec(tion)?\b",
    r"\(spec\s+[0-9§]",
    r"\bthe\s+spec\b",
    r"\bspec's\b",
    "contracts" + r"\.md",
    "sed-" + "official",
    "clipzss-" + "paper",
    "style-" + "anchors",
    "/work/" + "shared",
    r"shared/(spec|papers)\b",
    "research " + "notes",
]
PATTERN = re.compile("|".join(f"(?:{p})" for p in _PRIVATE), re.IGNORECASE)

TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".ini", ".sh", ".rst"}


def _tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    # Tracked files and new ones not yet added (not the ignored ones: virtual environments, build outputs).
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, check=True).stdout
    names = [n for n in out.decode("utf-8").split("\0") if n]
    this = Path(__file__).resolve()
    paths = [REPO / n for n in names if Path(n).suffix.lower() in TEXT_SUFFIXES]
    return [p for p in paths if p.is_file() and p.resolve() != this]


def find_private_references(paths: list[Path]) -> list[str]:
    """``file:line: text`` of every line that cites a private document."""
    hits = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if PATTERN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    return hits


def test_pattern_catches_the_known_forms() -> None:
    samples = ["(spec §5.3)", "see spec Appendix B", "the spec's fixes", "(" + "spec 7)", "sed-" + "official.md §9"]
    for sample in samples:
        assert PATTERN.search(sample), sample
    for fine in ["CLIP-ZSS paper, Sec. 3.3, Eq. 4", "official SED `eval.sh`", "MethodSpec", "find_spec", "spec = x"]:
        assert not PATTERN.search(fine), fine


def test_no_tracked_file_cites_private_documents() -> None:
    hits = find_private_references(_tracked_text_files())
    assert not hits, "cite a paper section, official code or a README section instead:\n" + "\n".join(hits)
