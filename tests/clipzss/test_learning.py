"""End to end: a tiny preset learns the seen classes of the demo data (loss falls, seen mIoU rises)."""

from __future__ import annotations

import torch

from conftest import demo_batch


def test_tiny_preset_learns_the_seen_demo_classes(make_tiny) -> None:
    from ovcore.metrics import SegEvaluator
    from ovcore.train import OptimConfig, build_optimizer

    model = make_tiny("clipzss_tiny_convnext_segformer")
    train, val = demo_batch(32, 64, seed=0), demo_batch(8, 64, seed=1)

    def seen_miou() -> float:
        model.eval()
        ev = SegEvaluator(8, seen_classes=list(range(6)), unseen_classes=[6, 7])
        ev.update(model.predict(val["image"]).labels, val["full_label"])
        model.train()
        return ev.compute()["mIoU_seen"]

    before = seen_miou()
    opt = build_optimizer(model, OptimConfig(lr=3e-3, weight_decay=0.01))  # the model's rules (default_optim)
    gen = torch.Generator().manual_seed(0)
    history = []
    model.train()
    for _ in range(30):
        idx = torch.randint(0, 32, (4,), generator=gen)
        losses = model({"image": train["image"][idx], "label": train["label"][idx]})
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    after = seen_miou()
    assert sum(history[-5:]) / 5 < 0.6 * sum(history[:5]) / 5, history
    assert after > before + 20, (before, after)
