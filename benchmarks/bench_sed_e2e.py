"""SED end to end on CPU: what a user waits for, this package vs the official-style pipeline, side by side.

sed_convnext_b_768 with random weights (timing only), one 960x720 JPEG, batch 1, vocabularies of 10 / 150 / 847
ADE-20K names, without CER and with CER (k = 8, kept sets forced to 48 / 32 / 24 classes in both pipelines so the
rows compare the same work; random heads would keep arbitrary sets). Stages, each timed on its own:

* ``decode``: JPEG file -> uint8 tensor (`ovcore.data.io.read_image`);
* ``resize``: short side 640 (PIL), normalise, warp to 768 (`SED._test_resize`, `SED.preprocess`);
* ``encoder``: the open_clip ConvNeXt-B image tower + dense CLIP head (`SEDEncoder`), the same module for both;
* ``text_cold``: embedding a vocabulary nobody embedded before (80 templates per class). Ours: `SED.set_vocabulary`
  (batched, truncated context, per-class cache); official-style: `encode_text` per class on the full 77-token
  context, as the released code. Measured once per vocabulary size on 4 new names, scaled per class;
* ``text_cached``: the same vocabulary again (ours: the per-class memory cache; the official code keeps the
  embeddings of its one test vocabulary, so 0);
* ``cost``: the cosine cost map (ours `ovcore.costmap.cost_map`; official-style: normalise + einsum);
* ``decoder`` (``select``: the CER selections inside it): `Aggregator.infer` / `forward_cer` vs the official
  forward / fast path re-implemented in tests/sed/official_sed.py;
* ``post``: sigmoid probabilities resized to the image, arg-max, overlay (`ovcore.vis.render_overlay`); ours with
  `SED`'s resize, which skips the all-zero rows of rejected classes.

``predict`` = decode + resize + encoder + text_cached + cost + decoder + post (a prediction with a known
vocabulary); ``first`` adds text_cold. Repetitions alternate ours / official (medians); ``peak_rss_mb`` is the
largest resident-memory increase seen during one pipeline run (sampled every 2 ms). ``encoder_bf16`` rows time
ours with the encoder under bf16 autocast and report its effect on the probabilities. Rows go to
``benchmarks/results/sed_e2e.json``. Time box: ``SED_E2E_REPS`` (default 3) and ``SED_E2E_CLASSES``
(default ``10,150,847``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import official_sed  # tests/sed, on sys.path via the root config
import pytest
import torch
import torch.nn.functional as F
from forced_cer import FORCED, ForcedSelection

import sed
import sed.decoder
from ovcore.costmap import cost_map
from ovcore.data import get_class_names
from ovcore.data.io import read_image
from ovcore.vis.overlay import render_overlay
from sed.model import _resize_back

RESULTS = Path(__file__).parent / "results" / "sed_e2e.json"
TEXT_SAMPLE = 4
REPS = int(os.environ.get("SED_E2E_REPS", "3"))
CLASSES = [int(c) for c in os.environ.get("SED_E2E_CLASSES", "10,150,847").split(",")]


# ------------------------------------------------------------------------------------------------ helpers
class PeakRSS:
    """Largest resident-set increase (MB) while the context is open, sampled by a thread."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.mb = (max(self.peak, self._rss()) - self.base) / 2**20

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())


class Stopwatch:
    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    def run(self, stage: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        self.times[stage] += time.perf_counter() - t0
        return out


def official_text(model: sed.SED, names: list[str], templates: list[str]) -> torch.Tensor:
    """The released code's text embedding: per class, per synonym, encode_text on 77 tokens, mean, normalise."""
    tok, clip = model.encoder.tokenizer, model.encoder.clip
    rows = []
    for name in names:
        per_synonym = [F.normalize(clip.encode_text(tok([t.format(s) for t in templates])), dim=-1)
                       for s in name.split(", ")]
        rows.append(F.normalize(torch.stack(per_synonym).mean(0), dim=-1))
    return torch.stack(rows)


def official_cost(dense: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    img = F.normalize(dense, dim=1)
    return torch.einsum("bdhw,tpd->bpthw", img, F.normalize(text, dim=-1))


def post(probs: torch.Tensor, image: torch.Tensor, names: list[str], rejected: bool | None = None) -> Any:
    """Resize back, arg-max, overlay: ours through `SED`'s resize (`rejected` = CER ran), the official way else."""
    if rejected is None:
        out = F.interpolate(probs, size=image.shape[-2:], mode="bilinear", align_corners=False)
        labels = out.argmax(1)
    else:
        out, labels = _resize_back(probs, tuple(image.shape[-2:]), rejected)
    overlay = render_overlay(image.permute(1, 2, 0).numpy(), labels[0].numpy(), names, legend=False, side_by_side=False)
    return out, overlay


# ------------------------------------------------------------------------------------------------ pipelines
def run_pipeline(provider: str, model: sed.SED, path: Path, names: list[str], k: int | None,
                 sel: ForcedSelection, bf16: bool = False) -> tuple[dict[str, float], torch.Tensor, float]:
    """One prediction, stage by stage; returns (seconds per stage, probabilities at the image size, peak MB)."""
    sw = Stopwatch()
    select_time = [0.0]
    real_select = sed.decoder.select_categories

    def timed_select(*args: Any) -> Any:
        t0 = time.perf_counter()
        out = real_select(*args)
        select_time[0] += time.perf_counter() - t0
        return out

    sed.decoder.select_categories = timed_select
    real_valid = official_sed.valid_idx

    def timed_valid(*args: Any) -> Any:
        t0 = time.perf_counter()
        out = real_valid(*args)
        select_time[0] += time.perf_counter() - t0
        return out

    official_sed.valid_idx = timed_valid
    sel.stage = 0
    try:
        with PeakRSS() as rss, torch.inference_mode():
            image = sw.run("decode", read_image, path)
            x = sw.run("resize", lambda: model.preprocess(model._test_resize(image[None])))
            if provider == "ours":
                sw.run("text_cached", model.set_vocabulary, names)
                feats, dense = sw.run("encoder", lambda: _encode(model, x, bf16))
                cost = sw.run("cost", cost_map, dense, model.text_embeddings)
                skips = [feats[n] for n in ("res4", "res3", "res2")]
                if k is None:
                    probs = sw.run("decoder", lambda: model.decoder.infer(cost, skips)[0].sigmoid_())
                else:
                    probs = sw.run("decoder", lambda: model.decoder.forward_cer(cost, skips, k)[0])
            else:
                feats, dense = sw.run("encoder", model.encoder, x)
                cost = sw.run("cost", official_cost, dense, model.text_embeddings)
                skips = [feats[n] for n in ("res4", "res3", "res2")]
                agg = model.decoder
                if k is None:
                    probs = sw.run("decoder", lambda: official_sed.official_final(agg, cost, skips).sigmoid())
                else:
                    probs = sw.run("decoder", lambda: official_sed.official_fast_forward(agg, cost, skips, k)[0])
            rejected = (k is not None) if provider == "ours" else None
            out, _ = sw.run("post", post, probs, image, names, rejected)
    finally:
        sed.decoder.select_categories = real_select
        official_sed.valid_idx = real_valid
    sw.times["select"] = select_time[0]
    if provider != "ours":
        sw.times["text_cached"] = 0.0
    return dict(sw.times), out, rss.mb


def _encode(model: sed.SED, x: torch.Tensor, bf16: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    if not bf16:
        return model.encoder(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, dense = model.encoder(x)
    return {n: f.float() for n, f in feats.items()}, dense.float()


def cold_text(provider: str, model: sed.SED, names: list[str], rep: int) -> tuple[float, int]:
    """Seconds to embed `names` never seen before (sampled on TEXT_SAMPLE names and scaled per class above)."""
    sample = [f"{n} {rep}" for n in names[:TEXT_SAMPLE]]  # names no cache has seen
    templates = model.resolve_templates()
    t0 = time.perf_counter()
    with torch.inference_mode():
        if provider == "ours":
            model.encoder.encode_vocabulary(sample, templates)
        else:
            official_text(model, sample, templates)
    return (time.perf_counter() - t0) * len(names) / len(sample), len(sample)


# ------------------------------------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def model() -> sed.SED:
    torch.manual_seed(0)
    return sed.create_sed("sed_convnext_b_768", pretrained_clip=None).eval()


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    gen = np.random.default_rng(0)
    small = gen.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((960, 720), Image.BICUBIC)  # smooth regions, like a photo
    path = tmp_path_factory.mktemp("e2e") / "photo.jpg"
    img.save(path, quality=90)
    return path


def test_bench_sed_e2e(model: sed.SED, image_path: Path, forced: ForcedSelection) -> None:
    all_names = get_class_names("ade20k_847")
    cases = [(t, k) for t in CLASSES for k in (None, 8)]
    rows: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    diffs: dict[tuple, float] = {}
    _fill_vocabulary_memory(model, list(dict.fromkeys(get_class_names("ade20k_150") + all_names)))
    for t, k in cases:  # warm-up: first calls (oneDNN primitives, caches) are not timed
        names = get_class_names("ade20k_150")[:t] if t <= 150 else all_names[:t]
        run_pipeline("ours", model, image_path, names, k, forced)
    for rep in range(REPS):
        for t, k in cases:
            names = get_class_names("ade20k_150")[:t] if t <= 150 else all_names[:t]
            outs = {}
            for provider in ("ours", "official"):  # interleaved: ours, official, ours, official, ...
                times, out, peak = run_pipeline(provider, model, image_path, names, k, forced)
                if rep == 0 and k is None:  # compute-bound and long (minutes for the official code): measured once
                    rows[(t, None, provider)]["text_cold"].append(cold_text(provider, model, names, rep)[0])
                for stage, sec in times.items():
                    rows[(t, k, provider)][stage].append(sec)
                rows[(t, k, provider)]["peak_rss_mb"].append(peak)
                outs[provider] = out
            diffs[(t, k)] = max(diffs.get((t, k), 0.0), float((outs["ours"] - outs["official"]).abs().max()))
            assert diffs[(t, k)] < 1e-3, f"T={t} k={k}: pipelines disagree by {diffs[(t, k)]}"
            if rep == 0:  # bf16 encoder option: time and accuracy effect against fp32 ours
                times, out16, peak = run_pipeline("ours", model, image_path, names, k, forced, bf16=True)
                rows[(t, k, "ours_bf16")]["encoder"].append(times["encoder"])
                rows[(t, k, "ours_bf16")]["probs_max_abs_diff"].append(float((out16 - outs["ours"]).abs().max()))
                agree = float((out16.argmax(1) == outs["ours"].argmax(1)).float().mean())
                rows[(t, k, "ours_bf16")]["label_agreement"].append(agree)
    _write(rows, diffs)


def _fill_vocabulary_memory(model: sed.SED, names: list[str]) -> None:
    """Unit-norm random embeddings as the per-class memory cache of every name (the encoder weights are random
    anyway): embedding 997 names x 80 templates for real would take the CPU most of an hour, and the decoder's time
    does not depend on the values. Cold text encoding is measured separately (`cold_text`)."""
    gen = torch.Generator().manual_seed(1)
    key = tuple(model.resolve_templates())
    for name in names:
        base = torch.randn(1, model.encoder.embed_dim, generator=gen)
        emb = base + 0.3 * torch.randn(len(key), model.encoder.embed_dim, generator=gen)
        model._vocab_memory[(key, name)] = F.normalize(emb, dim=-1)


def _summary(stages: dict[str, list]) -> dict[str, float]:
    med = {s: statistics.median(v) for s, v in stages.items()}
    if "decode" in med:
        known = ("decode", "resize", "encoder", "text_cached", "cost", "decoder", "post")
        med["predict"] = sum(med[s] for s in known)
        if "text_cold" in med:
            med["first"] = med["predict"] + med["text_cold"]
    return med


def _write(rows: dict, diffs: dict) -> None:
    out = []
    for (t, k, provider), stages in rows.items():
        row = {"num_classes": t, "k": k if k is not None else "all", "provider": provider}
        row.update(reps=max(len(v) for v in stages.values()), **_summary(stages))
        out.append({**row, "max_abs_diff_vs_official": diffs.get((t, k))})
    threads = torch.get_num_threads()
    meta = {
        "device": f"cpu ({platform.processor() or platform.machine()}, {threads} threads)",
        "torch": torch.__version__,
        "load_avg_at_end": os.getloadavg(),
        "reps": REPS,
        "forced_kept": FORCED,
        "text_sample": TEXT_SAMPLE,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": out}, indent=2) + "\n")
