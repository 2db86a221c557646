"""The optimised decoder against the official forward (re-implemented in official_sed.py), shapes per stage, CER."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from official_sed import official_fast_forward, official_forward
from sed_testing import decoder_inputs, make_aggregator

from sed import fold_up_into_conv

ATOL = 2e-5


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_autograd_path_matches_official(mode: str) -> None:
    agg = getattr(make_aggregator("b"), mode)()
    cost, feats = decoder_inputs(2, 5, 4)
    ref = official_forward(agg, cost, feats, pool=agg.pooling)
    logits, aux = agg(cost, feats)
    assert torch.is_grad_enabled() and logits.requires_grad
    for ours, theirs in zip([logits, *aux], ref, strict=True):
        _close(ours, theirs)


@pytest.mark.parametrize(
    "mode,chunk,workers", [("eval", None, None), ("eval", 500, None), ("eval", 500, 1), ("train", None, 3)]
)
def test_inference_path_matches_official(mode: str, chunk: int | None, workers: int | None) -> None:
    # The chunked inference path (tiny chunk budgets force one class / a few pixels per chunk), on worker threads
    # (default: one per intra-op thread) or sequentially.
    agg = getattr(make_aggregator("l", chunk_elems=chunk, workers=workers), mode)()
    cost, feats = decoder_inputs(2, 6, 4, guidance=(768, 384, 192), seed=1)
    with torch.no_grad():
        ref = official_forward(agg, cost, feats, pool=agg.pooling)
    logits, aux = agg.infer(cost, feats, with_aux=True)
    assert not logits.requires_grad
    for ours, theirs in zip([logits, *aux], ref, strict=True):
        _close(ours, theirs)


def test_forward_is_the_training_path_in_any_grad_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluating the training loss under no_grad runs the same batched path (pooling 2 in train mode)."""
    agg = make_aggregator("b").train()
    cost, feats = decoder_inputs(1, 3, 4, seed=6)

    def fail(*args, **kwargs):
        raise AssertionError("forward must not switch to the inference path")

    monkeypatch.setattr(agg, "_infer_image", fail)
    with torch.no_grad():
        ref = official_forward(agg, cost, feats, pool=2)
        logits, aux = agg(cost, feats)
    for ours, theirs in zip([logits, *aux], ref, strict=True):
        _close(ours, theirs)


def test_predict_uses_the_inference_path(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = tiny_model.decoder
    calls: list[str] = []
    infer = decoder.infer
    monkeypatch.setattr(decoder, "infer", lambda *a, **kw: calls.append("infer") or infer(*a, **kw))
    monkeypatch.setattr(decoder, "forward", lambda *a, **kw: calls.append("forward"))
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    probs = tiny_model.predict(images, k=None)["probs"]
    assert calls == ["infer"] and probs.shape[-2:] == (32, 32)


def test_fold_up_into_conv_is_exact() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 12, 5, 7, generator=gen)
    w_up, b_up = torch.randn(12, 9, 2, 2, generator=gen), torch.randn(9, generator=gen)
    w = torch.randn(4, 9, 3, 3, generator=gen)
    ref = F.conv2d(F.conv_transpose2d(x, w_up, b_up, stride=2), w, padding=1)
    fused, bias_map = fold_up_into_conv(w_up, b_up, w, (10, 14))
    out = F.conv_transpose2d(x, fused, None, stride=2, padding=1) + bias_map
    _close(out, ref, atol=1e-4)


@pytest.mark.parametrize("variant", ["b", "l"])
def test_stage_shapes_768(variant: str) -> None:
    """Shapes through every stage for a 768 input (24x24 cost map), B and L skip widths."""
    agg = make_aggregator(variant).eval()
    guidance = {"b": (512, 256, 128), "l": (768, 384, 192)}[variant]
    cost, feats = decoder_inputs(1, 2, 24, guidance=guidance)
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        return lambda mod, inp, out: shapes.__setitem__(name, tuple(out.shape))

    for name in [
        "conv1",
        "head0",
        "head1",
        "head2",
        "head",
        "decoder1.cnext",
        "decoder1.up",
        "decoder2.up",
        "decoder3.up",
        "decoder_guidance_projection.0",
        "decoder_guidance_projection.2",
        "decoder_corr_guidance_projection.0",
        "decoder_corr_guidance_projection.2",
    ]:
        agg.get_submodule(name).register_forward_hook(hook(name))
    logits, aux = agg(cost, feats)  # autograd path: every module is called on the batched (B*T) tensors
    assert shapes["conv1"] == (2, 128, 24, 24)
    assert shapes["decoder_guidance_projection.0"] == (1, 32, 48, 48)
    assert shapes["decoder_guidance_projection.2"] == (1, 8, 192, 192)
    assert shapes["decoder_corr_guidance_projection.0"] == (2, 32, 48, 48)
    assert shapes["decoder_corr_guidance_projection.2"] == (2, 8, 192, 192)
    assert shapes["decoder1.cnext"] == (2, 128, 24, 24)
    assert shapes["decoder1.up"] == (2, 96, 48, 48)
    assert shapes["decoder2.up"] == (2, 48, 96, 96)
    assert shapes["decoder3.up"] == (2, 24, 192, 192)
    assert shapes["head0"] == (2, 1, 24, 24) and shapes["head1"] == (2, 1, 48, 48)
    assert shapes["head2"] == (2, 1, 96, 96) and shapes["head"] == (2, 1, 192, 192)
    assert logits.shape == (1, 2, 192, 192)
    assert [tuple(a.shape) for a in aux] == [(1, 2, 24, 24), (1, 2, 48, 48), (1, 2, 96, 96)]
    assert agg.decoder1.conv.conv1.weight.shape == (64, 160, 3, 3)
    assert agg.decoder_guidance_projection[0][0].weight.shape[1] == guidance[0]


def test_cer_with_k_at_least_t_equals_plain_decoder() -> None:
    agg = make_aggregator("b").eval()
    cost, feats = decoder_inputs(2, 6, 3, seed=2)
    with torch.no_grad():
        plain = official_forward(agg, cost, feats)[0].sigmoid()
        for k in (6, 50):
            probs, stats = agg.forward_cer(cost, feats, k)
            _close(probs, plain)
            assert stats["kept"] == [[6, 6, 6], [6, 6, 6]]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cer_matches_official_fast_path(k: int) -> None:
    agg = make_aggregator("b").eval()
    cost, feats = decoder_inputs(1, 12, 3, seed=4)
    with torch.no_grad():
        ref, (m0, m1, m2) = official_fast_forward(agg, cost, feats, k)
        probs, stats = agg.forward_cer(cost, feats, k)
    assert stats["kept"] == [[int(m0.sum()), int(m1.sum()), int(m2.sum())]]
    assert (probs == 0).equal(ref == 0)
    _close(probs, ref)


def test_cer_batch_keeps_categories_per_image() -> None:
    """Batch > 1 (the official code fails): each image equals its own batch-1 run and keeps its own classes."""
    agg = make_aggregator("b").eval()
    cost, feats = decoder_inputs(3, 16, 3, seed=5)
    with torch.no_grad():
        probs, stats = agg.forward_cer(cost, feats, 1)
        kept_sets = []
        for b in range(3):
            single, single_stats = agg.forward_cer(cost[b : b + 1], [f[b : b + 1] for f in feats], 1)
            ref, masks = official_fast_forward(agg, cost[b : b + 1], [f[b : b + 1] for f in feats], 1)
            _close(probs[b : b + 1], single)
            _close(probs[b : b + 1], ref)
            assert stats["kept"][b] == single_stats["kept"][0]
            kept = (probs[b] > 0).flatten(1).any(1)
            assert int(kept.sum()) == stats["kept"][b][2]
            kept_sets.append(tuple(kept.nonzero().flatten().tolist()))
    assert all(s[0] >= s[1] >= s[2] for s in stats["kept"])
    assert len(set(kept_sets)) > 1, "the images should keep different categories"


def test_cer_rejects_bad_k() -> None:
    agg = make_aggregator("b").eval()
    cost, feats = decoder_inputs(1, 3, 3)
    with pytest.raises(ValueError, match="k must be"):
        agg.forward_cer(cost, feats, 0)


def test_wrong_template_count_is_a_clear_error() -> None:
    agg = make_aggregator("b")
    cost, feats = decoder_inputs(1, 3, 3)
    with pytest.raises(ValueError, match="P=80"):
        agg(cost[:, :8], feats)


@pytest.mark.parametrize("size", [(1, 1), (1, 4), (2, 2), (5, 3), (24, 24)])
def test_fused_head0_equals_head0_of_conv1(size) -> None:
    """CER stage 1 scores all classes with head0 o conv1 fused into one 9x9 conv (+ border corrections)."""
    from sed._parallel import ChunkRunner

    agg = make_aggregator("b").eval()
    rows = 0.3 * torch.randn(7, 80, *size)
    with torch.no_grad(), ChunkRunner(rows.device) as run:
        fused = agg._aux0(run, rows)
        ref = agg.head0(agg.conv1(rows))[:, 0]
    _close(fused, ref, atol=1e-5)


def test_chunk_runner_restores_threads_and_propagates_errors() -> None:
    from sed._parallel import ChunkRunner

    threads = torch.get_num_threads()
    weight = torch.nn.Parameter(torch.ones(3))
    out = torch.zeros(8, 3)
    seen: list[bool] = []

    def fill(i: int, j: int) -> None:
        seen.append(torch.is_grad_enabled())
        out[i:j] = weight * torch.arange(i, j).float()[:, None]

    with torch.no_grad(), ChunkRunner(torch.device("cpu"), workers=2, budget=1) as run:
        assert run.split(8, 1) == [(i, i + 1) for i in range(8)]
        run.map(fill, run.split(8, 1))
    assert torch.get_num_threads() == threads
    assert not any(seen) and not out.requires_grad  # workers re-enter the caller's no-grad mode
    torch.testing.assert_close(out[:, 0], torch.arange(8).float())

    def boom(i: int, j: int) -> None:
        raise RuntimeError(f"chunk {i}")

    with pytest.raises(RuntimeError, match="chunk"):
        with ChunkRunner(torch.device("cpu"), workers=2) as run:
            run.map(boom, [(0, 1), (1, 2)])
    assert torch.get_num_threads() == threads
