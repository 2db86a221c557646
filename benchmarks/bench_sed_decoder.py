"""SED decoder speed at a 768 input (24x24 cost map, B = 1, pooling 1, random weights): official vs this package.

Rows (``benchmarks/results/sed_decoder.json``), one per (T, k, provider):

* provider ``official``: the faithful re-implementation of the official forward in ``tests/sed/official_sed.py``
  (SED paper, Sec. 3.2-3.3: cost rearranged to (B*T, P, h, w), K1..K3 and the repeated skip guidance built for every
  class, concat + DoubleConv, nested boolean masks for category early rejection), final head only for the plain
  decoder;
* provider ``ours``: `sed.Aggregator.infer` / `forward_cer` (chunked, fused, per-image CER), same weights and inputs;
* ``k = "all"`` is the plain decoder (no CER, the paper's Table 7 "All"), ``k = 8`` the CER path with the kept
  sets forced to 48 / 32 / 24 classes in both providers (`ForcedSelection`); ``kept`` lists the categories kept
  before decoder1/2/3.

Inputs imitate a real cost map (per class / template offsets, smooth spatial variation, six classes present in
smooth regions), so that top-k rejection keeps a plausible number of classes even with random weights. Each case
is timed once (``rounds=1``; CER rows 3 rounds) after one untimed call: the official decoder at T = 847 without CER
takes minutes on two cores. Outputs of the two providers are compared (max |diff| in the pytest-benchmark extra info).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from forced_cer import ForcedSelection
from official_sed import official_fast_forward, official_final

import sed

P, H = 80, 24  # templates, cost-map side for a 768 input
GUIDANCE = (512, 256, 128)  # ConvNeXt-B res4, res3, res2 channels
CASES = [(t, k) for t in (150, 847) for k in ("all", 8)]
_OUTPUTS: dict[tuple[int, Any], torch.Tensor] = {}


# --------------------------------------------------------------------------------- official-style decoder
def official_decoder(agg: sed.Aggregator, cost: torch.Tensor, feats: list[torch.Tensor], k: int | None):
    """Official forward (k None) or fast_conv_decoder (k): returns (probs (1, T, 192, 192), kept per stage)."""
    t = cost.shape[2]
    if k is None:
        return official_final(agg, cost, feats).sigmoid(), [t, t, t]
    probs, masks = official_fast_forward(agg, cost, feats, k)
    return probs, [int(m.sum()) for m in masks]


def ours_decoder(agg: sed.Aggregator, cost: torch.Tensor, feats: list[torch.Tensor], k: int | None):
    if k is None:
        t = cost.shape[2]
        return agg.infer(cost, feats)[0].sigmoid_(), [t, t, t]
    probs, stats = agg.forward_cer(cost, feats, k)
    return probs, stats["kept"][0]


# ------------------------------------------------------------------------------------------------ inputs
def make_inputs(num_classes: int, seed: int = 0, present: int = 6) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A cost map (1, 80, T, 24, 24) with per-class offsets, smooth variation and `present` classes in regions."""
    gen = torch.Generator().manual_seed(seed)

    def smooth(*lead: int) -> torch.Tensor:
        n = torch.randn(*lead, 4, 4, generator=gen).reshape(-1, 1, 4, 4)
        return F.interpolate(n, size=(H, H), mode="bicubic", align_corners=False).reshape(*lead, H, H)

    cost = 0.12 + 0.04 * torch.randn(P, num_classes, 1, 1, generator=gen)
    cost = cost + 0.02 * smooth(1, num_classes) + 0.005 * torch.randn(P, num_classes, H, H, generator=gen)
    region = smooth(present).argmax(0)
    for i, cls in enumerate(torch.randperm(num_classes, generator=gen)[:present].tolist()):
        cost[:, cls] += 0.15 * (region == i)
    feats = [torch.randn(1, c, H * 2 ** (i + 1), H * 2 ** (i + 1), generator=gen) for i, c in enumerate(GUIDANCE)]
    return cost.clamp(-1, 1).unsqueeze(0), feats


@pytest.fixture(scope="module")
def decoder() -> sed.Aggregator:
    torch.manual_seed(0)
    return sed.Aggregator(guidance_dims=GUIDANCE).eval()


@pytest.mark.parametrize("provider", ["official", "ours"])
@pytest.mark.parametrize("num_classes,k", CASES, ids=[f"T{t}-k{k}" for t, k in CASES])
def test_bench_sed_decoder(
    measure, benchmark, decoder, forced: ForcedSelection, num_classes: int, k: Any, provider: str
) -> None:
    cost, feats = make_inputs(num_classes)
    fn = official_decoder if provider == "official" else ours_decoder
    topk = None if k == "all" else k
    kept: list[int] = []  # filled by the first call; the row holds this list
    probs: list[torch.Tensor] = []

    @torch.inference_mode()
    def run() -> None:
        forced.stage = 0
        out, counts = fn(decoder, cost, feats, topk)
        kept[:] = counts
        probs[:] = [out]

    measure(
        run,
        kernel="sed_decoder",
        provider=provider,
        mode=f"k={k}",
        shape=(1, P, num_classes, H, H),
        dtype=torch.float32,
        rounds=1 if topk is None else 3,
        warmup_rounds=0,
        num_classes=num_classes,
        k=k,
        kept=kept,
    )
    other = _OUTPUTS.pop((num_classes, k), None)
    if other is None:
        _OUTPUTS[(num_classes, k)] = probs[0]
    else:
        diff = float((other - probs[0]).abs().max())
        benchmark.extra_info["max_abs_diff_vs_other_provider"] = diff
        assert diff < 1e-3, f"providers disagree by {diff}"
