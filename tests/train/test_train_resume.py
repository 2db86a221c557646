"""``--resume`` continues exactly: a run interrupted mid-way and resumed matches an uninterrupted one."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_fixtures import RandomSegmentation, TinySegmenter, dropout_model, final_weights, read_metrics, resume_config

from ovcore.train import Checkpointer, lr_factor, train

WORKER = Path(__file__).with_name("train_worker.py")
CURVE_KEYS = ("iteration", "loss", "ce", "l2", "lr")


def _curve(output_dir) -> list[tuple]:
    return [tuple(r[k] for k in CURVE_KEYS) for r in read_metrics(output_dir)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train(resume_config(out), dropout_model, RandomSegmentation(12))
    return out


class Interrupt(Exception):
    pass


def test_resume_after_exception_matches_uninterrupted_run(tmp_path, reference) -> None:
    def stop_at_7(iteration, losses):
        if iteration == 7:  # 6 is checkpointed; 7 is lost work that the resumed run redoes
            raise Interrupt

    cfg = resume_config(tmp_path)
    with pytest.raises(Interrupt):
        train(cfg, dropout_model, RandomSegmentation(12), step_callback=stop_at_7)
    assert Checkpointer(tmp_path / "checkpoints").latest().name == "ckpt_0000006.pt"
    assert read_metrics(tmp_path)[-1]["iteration"] == 7

    cfg.resume = True
    result = train(cfg, dropout_model, RandomSegmentation(12))
    assert result.iteration == 9
    # Bitwise: same process, same threads, deterministic CPU kernels, restored RNG (the model has dropout).
    assert _curve(tmp_path) == _curve(reference)
    torch.testing.assert_close(final_weights(tmp_path), final_weights(reference), rtol=0, atol=0)

    # Resuming a finished run is a no-op that keeps the results.
    assert train(cfg, dropout_model, RandomSegmentation(12)).iteration == 9
    assert _curve(tmp_path) == _curve(reference)


def test_resume_drops_a_torn_metrics_line(tmp_path, reference) -> None:
    # A process killed mid-append leaves half a JSON record at the end of metrics.jsonl; resuming must not choke on it.
    def stop_at_5(iteration, losses):
        if iteration == 5:
            raise Interrupt

    cfg = resume_config(tmp_path)
    with pytest.raises(Interrupt):
        train(cfg, dropout_model, RandomSegmentation(12), step_callback=stop_at_5)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 6, "loss": 0.')
    cfg.resume = True
    train(cfg, dropout_model, RandomSegmentation(12))
    assert _curve(tmp_path) == _curve(reference)
    assert not list(tmp_path.glob(".metrics.jsonl.tmp*"))  # rewritten through a temporary file, then renamed


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, reference) -> None:
    # A real crash: the subprocess (with 2 data-loader workers) kills itself with SIGKILL at iteration 5, after the
    # checkpoint of iteration 3; the resume runs in this process with no workers.
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path), "kill", "5"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert Checkpointer(tmp_path / "checkpoints").latest().name == "ckpt_0000003.pt"
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]

    cfg = resume_config(tmp_path, resume=True)
    train(cfg, dropout_model, RandomSegmentation(12))
    # Across processes the CPU kernels may pick other thread splits: compare to a tight tolerance.
    ours, ref = _curve(tmp_path), _curve(reference)
    assert [c[0] for c in ours] == list(range(1, 10))
    torch.testing.assert_close(
        torch.tensor([c[1:] for c in ours]), torch.tensor([c[1:] for c in ref]), rtol=1e-5, atol=1e-7
    )
    torch.testing.assert_close(final_weights(tmp_path), final_weights(reference), rtol=1e-5, atol=1e-7)


def test_resume_rewrites_tensorboard_and_can_extend_the_run(tmp_path) -> None:
    def stop_at_5(iteration, losses):
        if iteration == 5:
            raise Interrupt

    cfg = resume_config(tmp_path, tensorboard=True, max_iters=6)
    with pytest.raises(Interrupt):
        train(cfg, TinySegmenter, RandomSegmentation(12), step_callback=stop_at_5)
    cfg.resume = True
    train(cfg, TinySegmenter, RandomSegmentation(12))
    # A longer run resumed from the end of the first: the schedule follows the new length.
    cfg.max_iters = 9
    train(cfg, TinySegmenter, RandomSegmentation(12))
    records = read_metrics(tmp_path)
    assert [r["iteration"] for r in records] == list(range(1, 10))
    assert records[6]["lr"] == pytest.approx(cfg.optim.lr * lr_factor(cfg.schedule, 6, 9))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [e.step for e in scalars] == list(range(1, 10))  # the lost iterations 4 and 5 are not duplicated
    assert [e.value for e in scalars] == pytest.approx([r["loss"] for r in records])
