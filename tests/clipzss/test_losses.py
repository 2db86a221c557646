"""Eq. 7 classifier and the Eq. 8 losses; every loss is finite on edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipzss.losses import (
    bce_prototype_loss,
    ce_loss,
    classifier_logits,
    dice_loss,
    nel_loss,
    one_hot_targets,
    sigmoid_focal_loss,
)
from clipzss.synthesizer import Synthesizer, label_centroids

IGNORE = 255


def test_classifier_logits_eq7() -> None:
    feats = torch.randn(2, 8, 3, 3)
    text = F.normalize(torch.randn(4, 8), dim=-1)
    protos = torch.randn(2, 8)
    out = classifier_logits(feats, text, 10.0, protos, beta=2.0)
    assert out.shape == (2, 6, 3, 3)
    r = F.normalize(feats, dim=1)
    torch.testing.assert_close(out[:, :4], 10.0 * torch.einsum("bchw,tc->bthw", r, text))
    cos = torch.einsum("bchw,kc->bkhw", r, F.normalize(protos, dim=-1))
    torch.testing.assert_close(out[:, 4:], 2.0 * cos)
    assert out[:, 4:].abs().max() <= 2.0 + 1e-5  # cosine branch is bounded by beta
    raw = classifier_logits(feats, text, 1.0, None, normalize_features=False)
    torch.testing.assert_close(raw, torch.einsum("bchw,tc->bthw", feats, text))


def test_focal_matches_torchvision() -> None:
    from torchvision.ops import sigmoid_focal_loss as tv_focal

    x = torch.randn(6, 50)
    t = (torch.rand(6, 50) > 0.7).float()
    ours = sigmoid_focal_loss(x, t, num_masks=3.0)
    ref = tv_focal(x, t, alpha=0.25, gamma=2.0, reduction="none").mean(1).sum() / 3.0
    torch.testing.assert_close(ours, ref)


def test_nel_on_a_tiny_example() -> None:
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = IGNORE
    oh = one_hot_targets(target, 3)
    present = oh.flatten(2).amax(-1) > 0
    n = float(present.sum())
    x, t = logits.flatten(2).reshape(6, -1), oh.flatten(2).reshape(6, -1)
    expect = 100 * sigmoid_focal_loss(x, t, n) + dice_loss(x[present.reshape(-1)], t[present.reshape(-1)], n)
    torch.testing.assert_close(nel_loss(logits, target), expect)
    assert oh[0, :, 0].sum() == 0  # ignored pixels: all-zero target, still negatives in the focal term


def _finite(loss: torch.Tensor, *params: torch.Tensor) -> None:
    assert torch.isfinite(loss), loss
    loss.backward()
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("case", ["all_ignore", "no_pseudo", "single_image", "one_pixel"])
def test_losses_are_finite_on_edge_cases(case: str) -> None:
    b = 1 if case == "single_image" else 2
    feats = torch.randn(b, 8, 4, 4, requires_grad=True)
    text = F.normalize(torch.randn(3, 8), dim=-1)
    target = torch.randint(0, 3, (b, 16, 16))
    if case == "all_ignore":
        target.fill_(IGNORE)
    if case == "one_pixel":
        target.fill_(IGNORE)
        target[0, 3, 3] = 1

    def logits() -> torch.Tensor:
        return F.interpolate(classifier_logits(feats, text, 14.0), size=(16, 16), mode="bilinear")

    for fn in (ce_loss, nel_loss):
        feats.grad = None
        _finite(fn(logits(), target), feats)
    if case == "all_ignore":
        assert float(ce_loss(logits(), target).detach()) == 0.0


def test_bce_prototype_loss() -> None:
    text = F.normalize(torch.randn(4, 8), dim=-1)
    protos = text[[2, 0]].clone().requires_grad_(True)
    ids = torch.tensor([2, 0])
    full = bce_prototype_loss(protos, ids, text, 10.0, -5.0)
    logits = 10.0 * F.normalize(protos, dim=-1) @ text.T - 5.0
    torch.testing.assert_close(full, F.binary_cross_entropy_with_logits(logits, F.one_hot(ids, 4).float()))
    pos = bce_prototype_loss(protos, ids, text, 10.0, -5.0, mode="positive")
    torch.testing.assert_close(pos, -F.logsigmoid(torch.full((2,), 5.0)).mean())
    _finite(full, protos)
    empty = torch.zeros(0, 8, requires_grad=True)
    assert float(bce_prototype_loss(empty, torch.zeros(0, dtype=torch.long), text, 10.0).detach()) == 0.0
    with pytest.raises(ValueError):
        bce_prototype_loss(protos, ids, text, 10.0, mode="negative")


def test_label_centroids_equal_nearest_upsampled_means() -> None:
    feats = torch.randn(2, 5, 4, 4, requires_grad=True)
    labels = torch.randint(0, 3, (2, 16, 16))
    labels[1, :8] = IGNORE
    cents, present = label_centroids(feats, labels, 4)
    up = F.interpolate(feats, size=(16, 16), mode="nearest")
    for lab in range(3):
        m = labels == lab
        torch.testing.assert_close(cents[lab], up.permute(0, 2, 3, 1)[m].mean(0))
    assert present.tolist() == [True, True, True, False]
    cents.sum().backward()
    assert feats.grad is not None


@pytest.mark.parametrize("kind", ["decoder", "mlp", "identity"])
def test_synthesizer_kinds(kind: str) -> None:
    from clipzss.config import SynthesizerConfig

    syn = Synthesizer(16, SynthesizerConfig(kind=kind, layers=1, heads=4))
    q = torch.randn(5, 16, requires_grad=True)
    out = syn(q, torch.randn(3, 16))
    assert out.shape == (5, 16)
    if kind == "identity":
        assert torch.equal(out, q)
    assert syn(torch.zeros(0, 16), torch.randn(3, 16)).shape == (0, 16)
    with pytest.raises(ValueError):
        Synthesizer(16, SynthesizerConfig(kind="rnn"))  # type: ignore[arg-type]
