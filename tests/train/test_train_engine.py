"""The training loop: accumulation, losses, clipping, AMP, logging, evaluation, and input validation."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from train_fixtures import RandomSegmentation, TinySegmenter, final_weights, read_metrics, tiny_config

from ovcore.train import lr_factor, train


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 1)

    def forward(self, batch):
        return {"mse": F.mse_loss(self.fc(batch["x"]).squeeze(-1), batch["y"])}


class Points(Dataset):
    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 5, generator=g)
        self.y = self.x @ torch.arange(5.0) + 0.1 * torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def test_grad_accumulation_equals_large_batch(tmp_path) -> None:
    runs = {}
    for accum in (1, 4):
        cfg = tiny_config(
            tmp_path / f"a{accum}", batch_size=8, grad_accum_steps=accum, max_iters=6, lr=0.05, schedule_name="constant"
        )
        train(cfg, LinearRegression, Points())
        runs[accum] = (final_weights(cfg.output_dir), [r["mse"] for r in read_metrics(cfg.output_dir)])
    torch.testing.assert_close(runs[4][0], runs[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(runs[4][1]), torch.tensor(runs[1][1]), rtol=1e-5, atol=1e-6)


def test_outputs_metrics_eval_json_and_tensorboard(tmp_path) -> None:
    calls = []

    def evaluate_fn(model, iteration):
        assert not model.training
        calls.append(iteration)
        torch.rand(5)  # evaluation may use the RNG without perturbing training
        return {"mIoU": 12.5 + iteration, "IoU": [1.0, float("nan")]}

    cfg = tiny_config(
        tmp_path / "run",
        max_iters=6,
        eval_every=4,
        log_every=2,
        checkpoint_every=3,
        keep_last=1,
        tensorboard=True,
        progress=True,
    )
    result = train(cfg, TinySegmenter, RandomSegmentation(8), evaluate_fn=evaluate_fn)
    out = tmp_path / "run"
    assert calls == [4, 6] and sorted(result.eval_results) == [4, 6]
    assert json.loads((out / "eval" / "iter_0000004.json").read_text())["mIoU"] == 16.5
    assert json.loads((out / "config.json").read_text())["optim"]["lr"] == cfg.optim.lr
    records = read_metrics(out)
    assert [r["iteration"] for r in records] == [2, 4, 6]
    assert {"loss", "ce", "l2", "lr", "images_per_s"} <= set(records[0])
    assert records[-1]["loss"] == pytest.approx(records[-1]["ce"] + records[-1]["l2"], rel=1e-5)
    # The rate logged at iteration i is the one its step used: the schedule at i - 1 steps done.
    assert [r["lr"] for r in records] == pytest.approx(
        [cfg.optim.lr * lr_factor(cfg.schedule, i - 1, 6) for i in (2, 4, 6)]
    )
    assert result.losses["loss"] == pytest.approx(records[-1]["loss"])
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt_0000006.pt"]
    assert result.checkpoint == out / "checkpoints" / "ckpt_0000006.pt"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/ce", "train/lr", "train/images_per_s", "eval/mIoU"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]


def test_images_per_s_excludes_checkpoint_and_evaluation_time(tmp_path, monkeypatch) -> None:
    # A fake clock that only the model, checkpoint writes and evaluation advance: each step costs 1 s of training.
    engine = importlib.import_module("ovcore.train.engine")
    clock = [0.0]
    monkeypatch.setattr(engine, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    real_save = torch.save

    def slow_save(*args, **kwargs):
        clock[0] += 50.0
        return real_save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", slow_save)

    class OneSecondStep(TinySegmenter):
        def forward(self, batch):
            clock[0] += 1.0
            return super().forward(batch)

    def slow_eval(model, iteration):
        clock[0] += 100.0
        return {"iteration": iteration}

    # Evaluations (2, 6) and checkpoints (3, 6, 8) fall inside the logged windows (1-4, 5-8), not on their ends.
    cfg = tiny_config(tmp_path, max_iters=8, log_every=4, eval_every=2, checkpoint_every=3, eval_at_end=False)
    train(cfg, OneSecondStep, RandomSegmentation(8), evaluate_fn=slow_eval)
    records = read_metrics(tmp_path)
    assert [r["iteration"] for r in records] == [4, 8]
    assert [r["images_per_s"] for r in records] == pytest.approx([4.0, 4.0])  # batch 4 per 1-second step


def test_loss_weights_and_step_callback(tmp_path) -> None:
    seen = []
    cfg = tiny_config(tmp_path / "w", max_iters=3, loss_weights={"l2": 0.0})
    train(cfg, TinySegmenter, RandomSegmentation(8), step_callback=lambda it, losses: seen.append((it, losses)))
    assert [it for it, _ in seen] == [1, 2, 3]
    for _, losses in seen:
        assert losses["loss"] == pytest.approx(losses["ce"])


def test_full_model_grad_clipping(tmp_path, monkeypatch) -> None:
    real, calls = torch.nn.utils.clip_grad_norm_, []

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        calls.append((len(params), max_norm))
        norm = real(params, max_norm, *args, **kwargs)
        assert torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])) <= max_norm * (1 + 1e-4)
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    cfg = tiny_config(tmp_path / "c", max_iters=3, clip_grad_norm=0.01)
    train(cfg, TinySegmenter, RandomSegmentation(8))
    n_params = len(list(TinySegmenter().parameters()))
    assert calls == [(n_params, 0.01)] * 3  # every step, over all parameters together
    assert all(r["grad_norm"] > 0.01 for r in read_metrics(tmp_path / "c"))  # the pre-clip norm is logged


def test_bf16_autocast_on_cpu(tmp_path) -> None:
    dtypes = []

    class Probe(TinySegmenter):
        def forward(self, batch):
            dtypes.append(self.conv1(batch["image"].float()).dtype)
            return super().forward(batch)

    result = train(tiny_config(tmp_path / "bf16", max_iters=2, amp="bf16"), Probe, RandomSegmentation(8))
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert torch.isfinite(torch.tensor(result.losses["loss"]))
    assert all(v.dtype == torch.float32 for v in final_weights(tmp_path / "bf16").values())


def test_seed_controls_the_run(tmp_path) -> None:
    a = train(tiny_config(tmp_path / "a", max_iters=3), TinySegmenter, RandomSegmentation(8)).losses
    b = train(tiny_config(tmp_path / "b", max_iters=3), TinySegmenter, RandomSegmentation(8)).losses
    c = train(tiny_config(tmp_path / "c", max_iters=3, seed=1), TinySegmenter, RandomSegmentation(8)).losses
    assert a == b and a != c


def test_bad_configs(tmp_path) -> None:
    data = RandomSegmentation(8)
    with pytest.raises(ValueError, match="divisible"):
        train(tiny_config(tmp_path, batch_size=6, grad_accum_steps=4), TinySegmenter, data)
    with pytest.raises(RuntimeError, match="fp16"):
        train(tiny_config(tmp_path, amp="fp16"), TinySegmenter, data)
    with pytest.raises(ValueError, match="smaller than one"):
        train(tiny_config(tmp_path, batch_size=16), TinySegmenter, data)
    with pytest.raises(ValueError, match="does not exist"):
        train(tiny_config(tmp_path, resume_from=str(tmp_path / "nope.pt")), TinySegmenter, data)
    with pytest.raises(ValueError, match="max_iters"):
        train(tiny_config(tmp_path, max_iters=0), TinySegmenter, data)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        train(tiny_config(tmp_path, clip_grad_norm=0.0), TinySegmenter, data)


def test_non_finite_loss_stops_the_run(tmp_path) -> None:
    class Exploding(TinySegmenter):
        def forward(self, batch):
            return {"ce": super().forward(batch)["ce"] * float("nan")}

    with pytest.raises(FloatingPointError, match="iteration 1"):
        train(tiny_config(tmp_path), Exploding, RandomSegmentation(8))


def test_trains_on_the_demo_dataset(tmp_path) -> None:
    # ovcore ships the demo dataset, so a missing module or a changed signature is a failure, not a skip.
    from ovcore.data import demo

    data = demo.DemoSegmentation(num_images=4, size=32, seed=0)
    num_classes = len(demo.DEMO_CLASSES)
    model = lambda: TinySegmenter(num_classes=num_classes)  # noqa: E731
    result = train(tiny_config(tmp_path, max_iters=2, batch_size=2), model, data)
    assert result.iteration == 2 and torch.isfinite(torch.tensor(result.losses["ce"]))


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_cuda_amp(tmp_path, amp) -> None:
    cfg = tiny_config(
        tmp_path, max_iters=4, amp=amp, device="cuda", deterministic=False, checkpoint_every=2, clip_grad_norm=1.0
    )
    result = train(cfg, TinySegmenter, RandomSegmentation(8, size=32))
    assert torch.isfinite(torch.tensor(result.losses["loss"]))
    state = torch.load(result.checkpoint, weights_only=True)
    assert bool(state["scaler"]) == (amp == "fp16")
    cfg.resume, cfg.max_iters = True, 6
    assert train(cfg, TinySegmenter, RandomSegmentation(8, size=32)).iteration == 6
