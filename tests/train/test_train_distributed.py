"""Two processes launched by torchrun (Gloo, CPU) agree with one process on the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import RandomSegmentation, TinySegmenter, dist_config, final_weights, read_metrics

from ovcore.train import Checkpointer, load_checkpoint, train

WORKER = Path(__file__).with_name("train_worker.py")


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torchrun")
    # The documented launcher: torchrun (= python -m torch.distributed.run), one node, two processes.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(out),
        "dist",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "exitcode: -6" in proc.stderr:
        # A Gloo worker occasionally aborts (SIGABRT, "terminate called without an active exception") when the
        # 2-core machine is saturated by the rest of the suite; one fresh launch tells that apart from a real bug.
        out = tmp_path_factory.mktemp("torchrun_retry")
        cmd[-2] = str(out)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


def test_two_processes_match_one_process(tmp_path, torchrun_run) -> None:
    # 2 processes x micro-batch 1 x 2 accumulation steps (DDP no_sync) vs 1 process x micro-batch 4.
    single = dist_config(tmp_path)
    train(single, TinySegmenter, RandomSegmentation(16))
    torch.testing.assert_close(final_weights(torchrun_run), final_weights(tmp_path), rtol=1e-4, atol=1e-5)
    ddp_curve, single_curve = read_metrics(torchrun_run), read_metrics(tmp_path)
    assert [r["iteration"] for r in ddp_curve] == [r["iteration"] for r in single_curve] == list(range(1, 7))
    for a, b in zip(ddp_curve, single_curve, strict=True):
        assert a["lr"] == b["lr"]
        for key in ("loss", "ce", "l2"):  # losses averaged over the processes = the global-batch losses
            assert a[key] == pytest.approx(b[key], rel=1e-5)


def test_rank_reports_collectives_and_files(torchrun_run) -> None:
    reports = [json.loads((torchrun_run / f"rank{r}.json").read_text()) for r in range(2)]
    for r, rep in enumerate(reports):
        assert rep["rank"] == r and rep["world_size"] == 2 and rep["iteration"] == 6
        assert rep["mean_rank"] == 0.5 and rep["gathered"] == [0, 1]
        assert rep["checkpoint"] == str(torchrun_run / "checkpoints" / "ckpt_0000006.pt")  # on every rank
        assert rep["is_main"] == (r == 0)
    assert reports[0]["eval_iterations"] == [3, 6] and reports[1]["eval_iterations"] == []  # rank 0 evaluates
    assert reports[0]["losses"] == reports[1]["losses"]  # logged losses are all-reduced
    assert json.loads((torchrun_run / "eval" / "iter_0000006.json").read_text())["rank"] == 0
    ckpts = Checkpointer(torchrun_run / "checkpoints").list()
    assert [p.name for p in ckpts] == ["ckpt_0000003.pt", "ckpt_0000006.pt"]  # written once, by rank 0
    state = load_checkpoint(ckpts[-1])
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # every rank's RNG state
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # ranks draw different streams


def test_single_process_resumes_a_two_process_checkpoint(tmp_path, torchrun_run) -> None:
    # The data position is stored as global samples, so a run can resume on another number of processes.
    cfg = dist_config(tmp_path, resume_from=str(torchrun_run / "checkpoints" / "ckpt_0000003.pt"))
    result = train(cfg, TinySegmenter, RandomSegmentation(16))
    assert result.iteration == 6
    torch.testing.assert_close(final_weights(tmp_path), final_weights(torchrun_run), rtol=1e-4, atol=1e-5)
