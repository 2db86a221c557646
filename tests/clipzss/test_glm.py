"""GLM (Eqs. 1-3): attention pooling, InfoNCE, the FIFO CLS bank and the cross-process gather."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from clipzss.config import GLMConfig
from clipzss.glm import CLSTokenBank, GlobalLearningModule, attention_pool, info_nce, pool_features


def test_attention_pool_is_an_explicit_softmax_weighted_sum() -> None:
    b, c, h, w = 3, 16, 5, 7
    feats = torch.randn(b, c, h, w, dtype=torch.float64)
    cls = torch.randn(b, c, dtype=torch.float64)
    out = attention_pool(feats, cls)
    for i in range(b):
        r = feats[i].reshape(c, -1)  # (C, L)
        logits = torch.stack([cls[i] @ r[:, j] / math.sqrt(c) for j in range(r.shape[1])])
        weights = torch.exp(logits - logits.max())
        weights = weights / weights.sum()
        expect = sum(weights[j] * r[:, j] for j in range(r.shape[1]))
        torch.testing.assert_close(out[i], expect)


def test_pooling_uses_each_images_own_cls_only() -> None:
    feats = torch.randn(2, 8, 4, 4)
    cls = torch.randn(2, 8)
    single = attention_pool(feats[1:], cls[1:])
    torch.testing.assert_close(attention_pool(feats, cls)[1:], single)


def test_mean_and_max_pooling_ablations() -> None:
    feats = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(pool_features(feats, None, "mean"), feats.mean((2, 3)))  # type: ignore[arg-type]
    torch.testing.assert_close(pool_features(feats, None, "max"), feats.amax((2, 3)))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pool_features(feats, torch.randn(2, 8), "median")


def test_info_nce_equals_its_cross_entropy_form() -> None:
    b, c, m, tau = 4, 12, 6, 0.07
    pred = torch.randn(b, c, dtype=torch.float64)
    cls = torch.randn(b, c, dtype=torch.float64)
    bank = torch.randn(m, c, dtype=torch.float64)
    loss = info_nce(pred, torch.cat([cls, bank]), torch.arange(b), tau)
    p, s, v = F.normalize(pred, dim=-1), F.normalize(cls, dim=-1), F.normalize(bank, dim=-1)
    terms = []
    for i in range(b):
        pos = torch.exp(s[i] @ p[i] / tau)
        neg = sum(torch.exp(s[j] @ p[i] / tau) for j in range(b) if j != i) + sum(
            torch.exp(v[k] @ p[i] / tau) for k in range(m)
        )
        terms.append(-torch.log(pos / (neg + pos)))
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def test_bank_is_fifo_and_never_holds_gradients() -> None:
    bank = CLSTokenBank(size=3)
    batches = [torch.full((2, 4), float(t), requires_grad=True) * 1.0 for t in range(5)]
    for x in batches:
        bank.push(x)
    entries = bank.entries()
    assert len(entries) == 3
    assert [float(e[0, 0]) for e in entries] == [2.0, 3.0, 4.0]  # oldest dequeued first
    assert all(not e.requires_grad and e.grad_fn is None for e in entries)
    assert bank.tokens().shape == (6, 4)
    tokens = CLSTokenBank(size=5, unit="tokens")
    for x in batches:
        tokens.push(x)
    assert tokens.tokens()[:, 0].tolist() == [2.0, 3.0, 3.0, 4.0, 4.0]
    off = CLSTokenBank(size=0)
    off.push(batches[0])
    assert len(off) == 0 and off.tokens() is None
    with pytest.raises(ValueError):
        CLSTokenBank(size=-1)


def test_glm_uses_the_bank_of_previous_iterations() -> None:
    glm = GlobalLearningModule(GLMConfig(bank_size=24)).train()
    feats = torch.randn(2, 8, 4, 4, requires_grad=True)
    cls = torch.randn(2, 8)
    first = glm(feats, cls)
    assert len(glm.bank) == 1
    # loss of the first call = in-batch negatives only
    pred = attention_pool(feats, cls)
    torch.testing.assert_close(first, info_nce(pred, cls, torch.arange(2)))
    second = glm(feats, cls)
    torch.testing.assert_close(second, info_nce(pred, torch.cat([cls, cls]), torch.arange(2)))
    second.backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()
    glm.eval()
    glm(feats, cls)
    assert len(glm.bank) == 2  # eval mode never enqueues
    for _ in range(30):
        glm(feats, cls, update_bank=True)
    assert len(glm.bank) == 24


def test_single_image_without_bank_is_finite() -> None:
    glm = GlobalLearningModule(GLMConfig(bank_size=0)).train()
    feats = torch.randn(1, 8, 2, 2, requires_grad=True)
    loss = glm(feats, torch.randn(1, 8))
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    loss.backward()


def test_negatives_are_gathered_across_processes(tmp_path) -> None:
    """Two gloo processes with 2 images each give the loss of one process with the 4 images."""
    import torch.multiprocessing as mp

    sys.path.insert(0, os.path.dirname(__file__))
    from _dist_worker import glm_worker

    torch.manual_seed(0)
    feats = torch.randn(4, 8, 3, 3)
    cls = torch.randn(4, 8)
    # fork: the children reuse the imported modules (spawn would re-import torch and clipzss, ~10 s each)
    mp.start_processes(
        glm_worker, args=(2, str(tmp_path / "init"), feats, cls, str(tmp_path)), nprocs=2, start_method="fork"
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    full = feats.clone().requires_grad_(True)
    glm = GlobalLearningModule(GLMConfig(bank_size=2)).train()
    loss = glm(full, cls)
    (loss * 2).backward()  # each rank averages its 2 images; the mean of the rank losses is the 4-image mean
    torch.testing.assert_close((ranks[0]["loss"] + ranks[1]["loss"]) / 2, loss.detach())
    torch.testing.assert_close(torch.cat([ranks[0]["grad"], ranks[1]["grad"]]), full.grad)
    loss2 = glm(feats, cls)
    torch.testing.assert_close((ranks[0]["loss2"] + ranks[1]["loss2"]) / 2, loss2.detach())
    assert ranks[0]["bank_rows"] == 8  # the bank stores the gathered tokens: 2 iterations x 4


def test_bank_is_saved_in_the_state_dict_for_exact_resume():
    bank = CLSTokenBank(size=3)
    for i in range(5):
        bank.push(torch.full((2, 4), float(i)))
    restored = CLSTokenBank(size=3)
    restored.load_state_dict(bank.state_dict())
    assert len(restored) == 3
    torch.testing.assert_close(restored.tokens(), bank.tokens())
    restored.push(torch.full((2, 4), 9.0))  # FIFO order continues after the restore
    assert restored.tokens()[0, 0].item() == 3.0 and restored.tokens()[-1, 0].item() == 9.0
