"""Eq. 7 classifier and the Eq. 8 losses; every loss is finite on edge cases."""

from __future__ import annotations

import math

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

IGNORE = -1  # the fused labels' ignore value (clipzss.losses.IGNORE_LABEL)


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


def _tiny_nel_case() -> tuple[torch.Tensor, torch.Tensor]:
    """One image, two pixels, two channels; pixel 0 is class 0, pixel 1 is ignored (-1).

    Channel 0 logits (ln 3, -ln 3) give probabilities (3/4, 1/4); channel 1 logits (0, 0) give (1/2, 1/2).
    """
    ln3 = math.log(3.0)
    logits = torch.tensor([[[[ln3, -ln3]], [[0.0, 0.0]]]], dtype=torch.float64)
    return logits, torch.tensor([[[0, IGNORE]]])


def test_focal_and_dice_on_hand_computed_numbers() -> None:
    logits, target = _tiny_nel_case()
    x = logits.flatten(2).reshape(2, 2)
    t = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    # Focal, alpha 0.25, gamma 2, per element alpha_t * (1 - p_t)^2 * (-log p_t):
    #   channel 0, pixel 0 (target 1, p 3/4): 0.25 * (1/4)^2 * ln(4/3)
    #   channel 0, pixel 1 (target 0, p 1/4): 0.75 * (1/4)^2 * ln(4/3)
    #   channel 1, both pixels (target 0, p 1/2): 0.75 * (1/2)^2 * ln 2
    # mean over the 2 pixels of each row, sum of the rows: ln(4/3) / 32 + 3 ln 2 / 16 = 0.0089900648 + 0.1299651
    focal = math.log(4 / 3) / 32 + 3 * math.log(2) / 16
    assert focal == pytest.approx(0.138955166, abs=1e-8)
    assert float(sigmoid_focal_loss(x, t, num_masks=1.0)) == pytest.approx(focal, rel=1e-12)
    assert float(sigmoid_focal_loss(x, t, num_masks=2.0)) == pytest.approx(focal / 2, rel=1e-12)
    # Dice of row 0: 1 - (2 * 3/4 + 1) / ((3/4 + 1/4) + 1 + 1) = 1 - 2.5 / 3 = 1/6
    assert float(dice_loss(x[:1], t[:1], num_masks=1.0)) == pytest.approx(1 / 6, rel=1e-12)
    # Dice of an absent class (row 1): 1 - (0 + 1) / (1 + 0 + 1) = 1/2
    assert float(dice_loss(x[1:], t[1:], num_masks=1.0)) == pytest.approx(1 / 2, rel=1e-12)


def test_nel_on_a_tiny_example() -> None:
    logits, target = _tiny_nel_case()
    # 100 x focal over every (image, channel) row + dice over the present (image, class) pairs only (class 0), / 1
    expect = 100 * (math.log(4 / 3) / 32 + 3 * math.log(2) / 16) + 1 / 6
    assert expect == pytest.approx(14.062183, abs=1e-6)
    assert float(nel_loss(logits, target)) == pytest.approx(expect, rel=1e-6)  # float32 inside
    # the ignored pixel is a negative of every channel: its focal terms are in the sum above
    oh = one_hot_targets(target, 2)
    assert oh[0, :, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    # two copies of the image: twice the sums, twice the present pairs -> the same value
    assert float(nel_loss(logits.repeat(2, 1, 1, 1), target.repeat(2, 1, 1))) == pytest.approx(expect, rel=1e-6)
    # class 1 present in a second image: its dice row joins, num_masks = 2
    logits2 = torch.cat([logits, logits])
    target2 = torch.cat([target, torch.tensor([[[1, 1]]])])
    # image 2, channel 0: both pixels target 0 at p 3/4 (p_t 1/4, -log p_t = ln 4) and p 1/4 (p_t 3/4, ln(4/3))
    focal2 = (0.75 * (3 / 4) ** 2 * math.log(4) + 0.75 * (1 / 4) ** 2 * math.log(4 / 3)) / 2
    focal2 += 0.25 * (1 / 2) ** 2 * math.log(2)  # channel 1, both pixels target 1 at p 1/2
    dice2 = 1 - (2 * 1.0 + 1) / (1.0 + 2 + 1)  # channel 1 of image 2: sum p = 1, sum t = 2 -> 1/4
    expect2 = (100 * (math.log(4 / 3) / 32 + 3 * math.log(2) / 16 + focal2) + 1 / 6 + dice2) / 2
    assert float(nel_loss(logits2, target2)) == pytest.approx(expect2, rel=1e-6)


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


def _attention(q: torch.Tensor, kv: torch.Tensor, mha: torch.nn.MultiheadAttention, heads: int) -> torch.Tensor:
    """Multi-head attention written out: per-head softmax(q k^T / sqrt(d)) v, heads concatenated, output projection."""
    wq, wk, wv = mha.in_proj_weight.chunk(3)
    bq, bk, bv = mha.in_proj_bias.chunk(3)
    d = q.shape[-1] // heads
    out = []
    for h in range(heads):
        cols = slice(h * d, (h + 1) * d)
        qh, kh, vh = (q @ wq.T + bq)[:, cols], (kv @ wk.T + bk)[:, cols], (kv @ wv.T + bv)[:, cols]
        out.append(torch.softmax(qh @ kh.T / math.sqrt(d), -1) @ vh)
    return torch.cat(out, -1) @ mha.out_proj.weight.T + mha.out_proj.bias


def _decoder_by_hand(syn: Synthesizer, q: torch.Tensor, memory: torch.Tensor, heads: int) -> torch.Tensor:
    """One post-norm decoder layer: self-attention over the centroids, cross-attention to the CLS tokens, FFN."""
    layer = syn.decoder.layers[0]

    def norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias

    x = norm(q + _attention(q, q, layer.self_attn, heads), layer.norm1)
    x = norm(x + _attention(x, memory, layer.multihead_attn, heads), layer.norm2)
    ffn = torch.relu(x @ layer.linear1.weight.T + layer.linear1.bias) @ layer.linear2.weight.T + layer.linear2.bias
    return norm(x + ffn, layer.norm3)


def test_decoder_synthesizer_attends_to_the_cls_tokens() -> None:
    from clipzss.config import SynthesizerConfig

    torch.manual_seed(0)
    syn = Synthesizer(8, SynthesizerConfig(kind="decoder", layers=1, heads=2, ffn_ratio=2.0)).double().eval()
    q = torch.randn(3, 8, dtype=torch.float64)
    memory = torch.randn(2, 8, dtype=torch.float64)
    out = syn(q, memory)
    torch.testing.assert_close(out, _decoder_by_hand(syn, q, memory, heads=2))
    # keys and values are the CLS tokens: another CLS token changes every prototype; their order does not matter
    other = syn(q, memory + torch.randn_like(memory))
    assert ((other - out).abs().amax(-1) > 1e-3).all()
    torch.testing.assert_close(syn(q, memory.flip(0)), out)
    # values matter, not only keys: with one CLS token the attention weight is 1 whatever the keys, yet the output
    # follows the token (the value path)
    one = memory[:1]
    attn = syn.decoder.layers[0].multihead_attn
    wv, bv = attn.in_proj_weight.chunk(3)[2], attn.in_proj_bias.chunk(3)[2]
    value = (one @ wv.T + bv) @ attn.out_proj.weight.T + attn.out_proj.bias  # cross-attention output, any query
    layer = syn.decoder.layers[0]
    x = layer.norm1(q + _attention(q, q, layer.self_attn, 2))
    x = layer.norm2(x + value)
    torch.testing.assert_close(syn(q, one), layer.norm3(x + layer.linear2(torch.relu(layer.linear1(x)))))


@pytest.mark.parametrize("kind", ["decoder", "mlp", "identity"])
def test_synthesizer_kinds(kind: str) -> None:
    from clipzss.config import SynthesizerConfig

    torch.manual_seed(0)
    syn = Synthesizer(16, SynthesizerConfig(kind=kind, layers=1, heads=4))
    q = torch.randn(5, 16, requires_grad=True)
    memory = torch.randn(3, 16)
    out = syn(q, memory)
    assert out.shape == (5, 16)
    if kind == "identity":
        assert torch.equal(out, q)
    if kind == "mlp":  # FC-ReLU-FC of the centroids (Table 4), written out; the CLS tokens are not used
        lin1, lin2 = syn.mlp[0], syn.mlp[2]
        torch.testing.assert_close(out, torch.relu(q @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias)
    # only the decoder reads the CLS tokens
    moved = syn(q, memory + 1.0)
    assert torch.equal(moved, out) == (kind != "decoder")
    # each prototype comes from its own centroid: changing centroid 0 changes prototype 0
    q2 = q.detach().clone()
    q2[0] += 1.0
    assert not torch.allclose(syn(q2, memory)[0], out[0])
    out.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert syn(torch.zeros(0, 16), memory).shape == (0, 16)
    with pytest.raises(ValueError):
        Synthesizer(16, SynthesizerConfig(kind="rnn"))  # type: ignore[arg-type]
