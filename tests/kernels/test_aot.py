"""Ahead-of-time compilation of every kernel for sm_90, without a GPU (``python -m ovkernels.aot``).

The interpreter accepts programs that a GPU rejects, so this is the check that the compiled kernels build at
SED's shapes for each dtype, within shared memory and without register spills.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ovkernels import aot
from ovkernels.utils import HAS_TRITON, triton_interpret

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")

KERNELS = {
    "_dwconv_fwd_kernel",
    "_dwconv_bwd_weight_kernel",
    "_la_fwd_kernel",
    "_la_bwd_kernel",
    "_topk_mask_kernel",
    "_compact_kernel",
    "_gather_fwd_kernel",
    "_gather_bwd_kernel",
}


def _run_aot(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run(
        [sys.executable, "-m", "ovkernels.aot", *args], capture_output=True, text=True, timeout=900, env=env,
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def sm90_reports(tmp_path_factory) -> list[dict]:
    tmp_path = tmp_path_factory.mktemp("aot")
    out = _run_aot(tmp_path, "--arch", "90", "--json", str(tmp_path / "aot.json"))
    if out.returncode == 2 and "binding internals" in out.stderr:
        pytest.skip(out.stderr.strip())  # another Triton than the lock's (e.g. a GPU machine's own install)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return json.loads((tmp_path / "aot.json").read_text())


def test_every_kernel_compiles_for_sm90_in_every_dtype(sm90_reports):
    assert all(r["ok"] for r in sm90_reports)
    assert {r["kernel"] for r in sm90_reports} == KERNELS
    for dtype in ("*fp32", "*fp16", "*bf16"):
        compiled = {r["kernel"] for r in sm90_reports if dtype in r["signature"].values()}
        assert compiled == KERNELS - {"_compact_kernel"}, dtype  # the mask compaction reads bytes only


def test_compiled_kernels_stay_within_the_hardware(sm90_reports):
    for r in sm90_reports:
        assert r["shared_bytes"] <= aot.SHARED_LIMIT_KIB[90] * 1024, r
        if r["registers"] is not None:  # ptxas -v ran: no spills anywhere but an 8-byte one is tolerated
            assert r["registers"] <= 255, r
            assert r["spill_bytes"] <= 8, r


def test_sed_tiles_use_tensor_cores_at_width_16_and_above(sm90_reports):
    la = [r for r in sm90_reports if r["kernel"].startswith("_la_")]
    widths = {r["constexprs"]["BLOCK_D"]: r["constexprs"]["USE_DOT"] for r in la}
    assert widths == {32: True, 16: True, 8: False}


@pytest.mark.skipif(not triton_interpret(), reason="only meaningful with TRITON_INTERPRET=1")
def test_refuses_to_run_under_the_interpreter():
    # The test process has TRITON_INTERPRET=1 (root conftest), so the kernels are interpreted functions.
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        aot.compile_all((90,))


def test_cli_rejects_an_unknown_kernel_filter(tmp_path):
    out = _run_aot(tmp_path, "--only", "no_such_kernel")
    assert out.returncode == 2
    assert "no_such_kernel" in out.stderr
