"""Learning-rate schedules at known points, per-group multipliers, and agreement with torch's own schedulers."""

from __future__ import annotations

import math

import pytest
import torch

from ovcore.train import ScheduleConfig, build_scheduler, lr_factor


def _optimizer(lr: float = 1e-3, mults=(1.0, 0.01)) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr * m, "lr_mult": m} for m in mults]
    return torch.optim.AdamW(groups, lr=lr)


def _run(opt, sched, steps: int) -> list[list[float]]:
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return lrs


def test_cosine_endpoints() -> None:
    cfg = ScheduleConfig(name="cosine")
    assert lr_factor(cfg, 0, 80000) == 1.0
    assert lr_factor(cfg, 40000, 80000) == pytest.approx(0.5)
    assert lr_factor(cfg, 20000, 80000) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(cfg, 80000, 80000) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(cfg, 90000, 80000) == pytest.approx(0.0, abs=1e-12)  # clamped past the end
    # SED: base 2e-4 and the CLIP group at x0.01 -> 2e-6 at iteration 0, halves at 40k.
    opt = _optimizer(2e-4)
    sched = build_scheduler(opt, cfg, 80000, 2e-4)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-4, 2e-6])
    sched.last_epoch = 39999  # fast-forward without 40k optimizer steps
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-6])


def test_cosine_min_lr_scaled_and_absolute() -> None:
    assert lr_factor(ScheduleConfig(name="cosine"), 100, 100, end=0.1) == pytest.approx(0.1)
    assert lr_factor(ScheduleConfig(name="cosine"), 50, 100, end=0.1) == pytest.approx(0.55)
    scaled = ScheduleConfig(name="cosine", min_lr=1e-4)
    opt = _optimizer(1e-3)
    sched = build_scheduler(opt, scaled, 10, 1e-3)
    lrs = _run(opt, sched, 11)
    assert lrs[-1] == pytest.approx([1e-4, 1e-6])  # every group ends at min_lr x its multiplier
    absolute = ScheduleConfig(name="poly", power=1.0, min_lr=1e-4, min_lr_mode="absolute")
    opt = _optimizer(1e-3, mults=(1.0, 10.0))
    sched = build_scheduler(opt, absolute, 10, 1e-3)
    lrs = _run(opt, sched, 11)
    assert lrs[-1] == pytest.approx([1e-4, 1e-4])  # mmcv: every group ends at min_lr itself
    assert lrs[5] == pytest.approx([(1e-3 - 1e-4) * 0.5 + 1e-4, (1e-2 - 1e-4) * 0.5 + 1e-4])


def test_poly_with_warmup_known_values() -> None:
    # ZegCLIP / mmseg: linear warm-up of 1500 iterations from ratio 1e-6, then poly with power 0.9.
    cfg = ScheduleConfig(name="poly", power=0.9, warmup_iters=1500, warmup_ratio=1e-6)
    n = 20000
    poly = lambda it: (1 - it / n) ** 0.9  # noqa: E731
    assert lr_factor(cfg, 0, n) == pytest.approx(1e-6)
    assert lr_factor(cfg, 750, n) == pytest.approx((1 - 0.5 * (1 - 1e-6)) * poly(750))
    assert lr_factor(cfg, 1499, n) == pytest.approx((1 - (1 / 1500) * (1 - 1e-6)) * poly(1499))
    assert lr_factor(cfg, 1500, n) == pytest.approx(poly(1500))
    assert lr_factor(cfg, 10000, n) == pytest.approx(0.5**0.9)
    assert lr_factor(cfg, n, n) == 0.0
    # min_lr 1e-4 for a base lr of 1e-3: poly decays to 0.1 of the rate instead of 0.
    assert lr_factor(cfg, 10000, n, end=0.1) == pytest.approx(0.1 + 0.9 * 0.5**0.9)
    # Warm-up is monotone and continuous at its end.
    values = [lr_factor(cfg, it, n) for it in range(0, 1600, 50)]
    assert all(a < b for a, b in zip(values[:30], values[1:30], strict=False))
    assert lr_factor(cfg, 1499, n) == pytest.approx(lr_factor(cfg, 1500, n), rel=1e-3)


@pytest.mark.parametrize(
    ("cfg", "reference"),
    [
        (ScheduleConfig(name="cosine"), lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=17)),
        (
            ScheduleConfig(name="poly", power=0.9),
            lambda opt: torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=17, power=0.9),
        ),
        (ScheduleConfig(name="constant"), lambda opt: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)),
    ],
)
def test_matches_torch_schedulers_and_keeps_multipliers(cfg, reference) -> None:
    ours_opt, ref_opt = _optimizer(), _optimizer()
    ours = _run(ours_opt, build_scheduler(ours_opt, cfg, 17, 1e-3), 17)
    ref = _run(ref_opt, reference(ref_opt), 17)
    torch.testing.assert_close(torch.tensor(ours), torch.tensor(ref), rtol=1e-9, atol=1e-12)
    assert all(b == pytest.approx(a * 0.01) for a, b in ours)  # the multiplier holds at every step


def test_state_dict_roundtrip() -> None:
    cfg = ScheduleConfig(name="poly", warmup_iters=3)
    opt = _optimizer()
    sched = build_scheduler(opt, cfg, 10, 1e-3)
    _run(opt, sched, 4)
    state_opt, state_sched = opt.state_dict(), sched.state_dict()
    opt2 = _optimizer()
    sched2 = build_scheduler(opt2, cfg, 10, 1e-3)
    opt2.load_state_dict(state_opt)
    sched2.load_state_dict(state_sched)
    assert _run(opt2, sched2, 6) == _run(opt, sched, 6)


def test_bad_schedule_arguments() -> None:
    with pytest.raises(ValueError):
        lr_factor(ScheduleConfig(), 0, 0)
    with pytest.raises(ValueError):
        lr_factor(ScheduleConfig(warmup_iters=-1), 0, 10)
    with pytest.raises(ValueError):
        lr_factor(ScheduleConfig(name="step"), 0, 10)  # type: ignore[arg-type]
