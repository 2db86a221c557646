"""Subprocess entry of the training tests: ``python train_worker.py OUT kill K`` or ``torchrun ... OUT dist``."""

from __future__ import annotations

import json
import os
import signal
import sys

from train_fixtures import RandomSegmentation, TinySegmenter, dist_config, dropout_model, resume_config

from ovcore.train import all_gather_object, all_reduce_mean, cleanup, init_distributed, train


def kill(out: str, at: int) -> None:
    def die(iteration, losses):
        if iteration == at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no atexit, no flushing: a real crash

    train(resume_config(out, num_workers=2), dropout_model, RandomSegmentation(12), step_callback=die)


def dist(out: str) -> None:
    info = init_distributed("cpu", "gloo")  # train() reuses this group and leaves it to us
    assert info.world_size == 2 and info.owns_group

    def evaluate_fn(model, iteration):
        return {"iteration_seen": iteration, "rank": info.rank}

    result = train(
        dist_config(out, grad_accum_steps=2, dist_backend="gloo"),
        TinySegmenter,
        RandomSegmentation(16),
        evaluate_fn=evaluate_fn,
    )
    report = {
        "rank": info.rank,
        "world_size": info.world_size,
        "iteration": result.iteration,
        "eval_iterations": sorted(result.eval_results),
        "mean_rank": all_reduce_mean({"r": float(info.rank)})["r"],
        "gathered": all_gather_object(info.rank),
        "losses": result.losses,
        "checkpoint": str(result.checkpoint),
        "is_main": result.is_main,
    }
    with open(os.path.join(out, f"rank{info.rank}.json"), "w") as f:
        json.dump(report, f)
    cleanup(info)


if __name__ == "__main__":
    out, mode = sys.argv[1], sys.argv[2]
    if mode == "kill":
        kill(out, int(sys.argv[3]))
    elif mode == "dist":
        dist(out)
    else:
        raise SystemExit(f"unknown mode {mode}")
