"""An offline Hugging Face cache laid out by the tests (tests/ovcore/test_hub.py, tests/hub).

The folder is on the pytest ``pythonpath`` (root pyproject.toml).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REV = "0123456789abcdef0123456789abcdef01234567"
"""The commit every cached repository is stored under."""


def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the Hugging Face cache at an empty folder under ``tmp_path`` and take the hub offline.

    Returns:
        The cache folder (a test's ``hub_cache`` fixture returns it).
    """
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def put_in_cache(folder: Path, cache: Path, repo_id: str, revision: str = REV) -> Path:
    """Lay a saved folder out as huggingface_hub keeps a downloaded repository (refs/main -> snapshots/<rev>).

    Returns:
        The snapshot folder.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
