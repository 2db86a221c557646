"""How fast every console script answers ``--help`` (README "Command line": torch is imported only when a command runs).

For each script, side by side in one run: ``reference`` = a fresh interpreter importing torch (what every ``--help``
paid before the option modules stopped importing it) and ``help`` = a fresh interpreter running the script's ``main``
with ``--help``. The target is ``--help`` well under a second on an idle machine, i.e. several times faster than
importing torch; the ratio is asserted because absolute CPU times depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

PACKAGES = ("ovcore", "sed", "clipzss", "maskclip", "ovseg_app")
SCRIPTS = sorted(
    ep.name for ep in entry_points(group="console_scripts") if ep.value.split(".")[0] in PACKAGES
)
MIN_SPEEDUP = 3.0
REPS = 3
RESULTS = Path(__file__).parent / "results" / "cli_startup.json"


def _run(code: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120, env=env)


def _help_code(script: str) -> str:
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == script]
    module, _, function = ep.value.partition(":")
    return (
        f"import contextlib, io\nfrom {module} import {function} as main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
    )


def _seconds(code: str) -> float:
    start = time.perf_counter()
    _run(code)
    return time.perf_counter() - start


def test_help_is_faster_than_importing_torch() -> None:
    rows = []
    for script in SCRIPTS:
        help_code = _help_code(script)
        _run(help_code)  # warm the byte-code cache of the script's modules
        ours, torch_import = [], []
        for _ in range(REPS):  # interleaved: --help, import torch, --help, ...
            ours.append(_seconds(help_code))
            torch_import.append(_seconds("import torch"))
        help_s, torch_s = statistics.median(ours), statistics.median(torch_import)
        rows.append({"script": script, "help_ms": 1e3 * help_s, "import_torch_ms": 1e3 * torch_s,
                     "speedup": torch_s / help_s})
    RESULTS.parent.mkdir(exist_ok=True)
    meta = {"device": f"cpu ({platform.processor() or platform.machine()})", "load_avg_at_end": os.getloadavg(),
            "reps": REPS}
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    slow = [f"{r['script']} ({r['help_ms']:.0f} ms, {r['speedup']:.1f}x)" for r in rows if r["speedup"] < MIN_SPEEDUP]
    assert not slow, f"--help not {MIN_SPEEDUP}x faster than importing torch: {slow}"
