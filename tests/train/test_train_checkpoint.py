"""Atomic checkpoints, keep-last-N, RNG capture, weight loading, and a crash mid-save inside a training run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from train_fixtures import RandomSegmentation, TinySegmenter, final_weights, tiny_config

from ovcore.train import (
    Checkpointer,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
    train,
)


def _tmp_files(directory):
    return [p.name for p in directory.iterdir() if ".tmp" in p.name]


def test_atomic_save_never_shows_a_partial_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ckpt.pt"
    atomic_save({"v": torch.tensor(1)}, path)
    real_save = torch.save
    seen = []

    def observing_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")  # while writing, the final name must still hold the old, complete file
        seen.append(load_checkpoint(path)["v"].item())
        f.seek(0)
        f.truncate()
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", observing_save)
    atomic_save({"v": torch.tensor(2)}, path)
    assert seen == [1]
    assert load_checkpoint(path)["v"].item() == 2
    assert _tmp_files(tmp_path) == []


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch) -> None:
    ckpt = Checkpointer(tmp_path, keep_last=2)
    first = ckpt.save({"v": torch.arange(3)}, 10)

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"\x80\x02half a pickle")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save({"v": torch.arange(5)}, 20)
    assert ckpt.list() == [first]
    assert not ckpt.path_for(20).exists()
    assert _tmp_files(tmp_path) == []  # the temporary file is removed
    torch.testing.assert_close(load_checkpoint(first)["v"], torch.arange(3))


def test_keep_last_and_latest(tmp_path) -> None:
    ckpt = Checkpointer(tmp_path / "c", keep_last=2)
    assert ckpt.latest() is None and ckpt.list() == []
    for it in (5, 10, 15, 100, 20):
        ckpt.save({"it": it}, it)
    assert [p.name for p in ckpt.list()] == ["ckpt_0000020.pt", "ckpt_0000100.pt"]  # numeric order, not save order
    assert ckpt.latest() == ckpt.path_for(100)
    # A SIGKILL mid-save leaves a hidden temporary file behind: never listed, removed on the next start.
    # (the atomic writer's naming scheme: .<name>.<pid>.<token>.tmp; pid 99999999 is above any pid_max)
    stale = tmp_path / "c" / ".ckpt_0000200.pt.99999999.0123abcd.tmp"
    stale.write_bytes(b"junk")
    assert ckpt.latest() == ckpt.path_for(100)
    ckpt.remove_stale_temporaries()
    assert not stale.exists()
    keep_all = Checkpointer(tmp_path / "all", keep_last=0)
    for it in range(4):
        keep_all.save({}, it)
    assert len(keep_all.list()) == 4
    with pytest.raises(ValueError):
        Checkpointer(tmp_path, keep_last=-1)


def test_rng_capture_restore_roundtrip(tmp_path) -> None:
    state = capture_rng_state()
    atomic_save({"rng": state}, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])  # loads with weights_only=True
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == second[:2]
    torch.testing.assert_close(first[2], second[2], rtol=0, atol=0)


def test_load_model_weights_from_training_checkpoint_and_state_dict(tmp_path) -> None:
    cfg = tiny_config(tmp_path / "run", max_iters=2)
    train(cfg, TinySegmenter, RandomSegmentation(8))
    ckpt = Checkpointer(tmp_path / "run" / "checkpoints").latest()
    model = TinySegmenter()
    load_model_weights(model, ckpt)
    torch.testing.assert_close(model.state_dict(), final_weights(tmp_path / "run"))
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    other = TinySegmenter(width=8)
    load_model_weights(other, tmp_path / "plain.pt")
    torch.testing.assert_close(other.state_dict(), model.state_dict())


def test_training_crash_mid_save_then_resume_matches(tmp_path, monkeypatch) -> None:
    data = RandomSegmentation(12)
    ref = tiny_config(tmp_path / "ref", checkpoint_every=2, keep_last=2)
    train(ref, TinySegmenter, data)

    cfg = tiny_config(tmp_path / "crash", checkpoint_every=2, keep_last=2)
    real_save, calls = torch.save, []

    def save_that_dies_on_the_third_call(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the checkpoint of iteration 6
            f.write(b"truncated")
            raise KeyboardInterrupt  # the harshest in-process interruption
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_that_dies_on_the_third_call)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, TinySegmenter, data)
    monkeypatch.setattr(torch, "save", real_save)
    ckpts = Checkpointer(tmp_path / "crash" / "checkpoints")
    assert [p.name for p in ckpts.list()] == ["ckpt_0000002.pt", "ckpt_0000004.pt"]
    assert _tmp_files(ckpts.directory) == []

    cfg.resume = True
    result = train(cfg, TinySegmenter, data)
    assert result.iteration == 8
    torch.testing.assert_close(final_weights(tmp_path / "crash"), final_weights(tmp_path / "ref"), rtol=0, atol=0)
    assert [p.name for p in ckpts.list()] == ["ckpt_0000006.pt", "ckpt_0000008.pt"]


def test_fresh_run_refuses_a_directory_with_later_checkpoints(tmp_path) -> None:
    data = RandomSegmentation(8)
    train(tiny_config(tmp_path, max_iters=2), TinySegmenter, data)
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(tmp_path, max_iters=2), TinySegmenter, data)
    first = Checkpointer(tmp_path / "checkpoints").path_for(2)
    # Resuming from an earlier checkpoint of the same directory is refused for the same reason.
    train(tiny_config(tmp_path, max_iters=4, resume=True, checkpoint_every=1), TinySegmenter, data)
    with pytest.raises(ValueError, match="another run"):
        train(tiny_config(tmp_path, max_iters=4, resume_from=str(first)), TinySegmenter, data)


def test_resume_into_another_model_says_what_does_not_fit(tmp_path) -> None:
    cfg = tiny_config(tmp_path, max_iters=2, checkpoint_every=2)
    train(cfg, TinySegmenter, RandomSegmentation(8))
    cfg.max_iters, cfg.resume = 4, True
    with pytest.raises(ValueError) as info:
        train(cfg, lambda: TinySegmenter(width=6), RandomSegmentation(8))  # another width: every shape differs
    message = str(info.value)
    assert message.startswith("--resume checkpoint ") and "ckpt_0000002.pt" in message
    # torch's first line only names the class ("Error(s) in loading state_dict for ..."): the first mismatch is kept
    assert "size mismatch for conv1.weight" in message and "Error(s) in loading" not in message
    assert "\n" not in message and "same model / preset" in message
