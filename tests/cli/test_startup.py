"""Every console script answers ``--help`` and argument errors without importing torch (README "Command line").

Each script's ``main`` runs in a fresh interpreter (``python -c``), so the check sees exactly what the command
imports before it parses; the help text must show the shared flags where they apply.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

# Console script -> shared flags its --help must show.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "ovcore": (),
    "sed-convert": (),
    "sed-demo": ("--output-dir",),
    "sed-train": ("--data-root", "--output-dir", "--resume", "--preset", "--recipe"),
    "sed-eval": ("--data-root", "--output-dir", "--preset", "--checkpoint", "--benchmarks"),
    "sed-predict": ("--output-dir", "--preset", "--checkpoint", "--vocabulary", "--batch-size"),
    "clipzss-train": ("--data-root", "--output-dir", "--resume", "--preset", "--recipe"),
    "clipzss-eval": ("--data-root", "--output-dir", "--preset", "--checkpoint", "--benchmarks"),
    "clipzss-predict": ("--output-dir", "--preset", "--checkpoint", "--vocabulary", "--batch-size"),
    "maskclip-eval": ("--data-root", "--output-dir", "--preset", "--checkpoint", "--benchmarks"),
    "maskclip-predict": ("--output-dir", "--preset", "--checkpoint", "--vocabulary", "--batch-size"),
}

_PROBE = """
import contextlib, io, json, sys, time
start = time.perf_counter()
from {module} import {function} as main
out = io.StringIO()
code = None
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as exit_:
        code = exit_.code
heavy = sorted(m for m in ("torch", "open_clip", "timm", "torchvision") if m in sys.modules)
print(json.dumps({{"code": code, "heavy": heavy, "help": out.getvalue(), "s": time.perf_counter() - start}}))
"""


def _target(script: str) -> tuple[str, str]:
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == script]
    module, _, function = ep.value.partition(":")
    return module, function


def _probe(script: str, argv: list[str]) -> dict:
    module, function = _target(script)
    code = _PROBE.format(module=module, function=function, argv=argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_console_script_is_covered() -> None:
    ours = {ep.name for ep in entry_points(group="console_scripts")
            if ep.value.split(".")[0] in ("ovcore", "sed", "clipzss", "maskclip")}
    assert ours == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_does_not_import_torch(script: str) -> None:
    result = _probe(script, ["--help"])
    assert result["code"] == 0
    assert result["heavy"] == [], f"{script} --help imported {result['heavy']}"
    for flag in SCRIPTS[script]:
        assert flag in result["help"], f"{script} --help does not show {flag}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_argument_errors_do_not_import_torch(script: str) -> None:
    result = _probe(script, ["--no-such-flag"])
    assert result["code"] == 2
    assert result["heavy"] == [], f"{script} imported {result['heavy']} to report a bad flag"
