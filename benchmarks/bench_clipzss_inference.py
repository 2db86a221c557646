"""CLIP-ZSS inference speed at 512x512: the student alone vs the same student with the CLIP ViT-B/16 image tower kept.

The paper's claim (Table 7, FPS column) is that dropping CLIP at test time makes inference several times faster
than methods that run CLIP next to the segmenter. Rows (``benchmarks/results/clipzss_inference.json``):

* provider ``student``: :class:`clipzss.segmenter.ZeroShotSegmenter` logits for 171 classes (whole mode, one 512 crop);
* provider ``reference``: the same plus the CLIP ViT-B/16 image tower at 512 (32x32 tokens), i.e. the cost of an
  inference that keeps CLIP; ``speedup_vs_reference`` is then the gain of dropping it;
* mode ``clip_vit_b16`` / provider ``teacher``: the CLIP tower alone.

Weights are random (speed does not depend on them). On CPU only batch 1 and few rounds are timed; figures are
indicative. images/s = batch * 1000 / median_ms.
"""

from __future__ import annotations

import pytest
import torch

import clipzss
from clipzss.config import StudentConfig, replace
from clipzss.segmenter import ZeroShotSegmenter

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
BATCH = 8 if HAS_CUDA else 1
PRESETS = ["clipzss_convnext_t_segformer", "clipzss_swin_b_upernet"] + (
    ["clipzss_convnext_b_upernet"] if HAS_CUDA else []
)
NUM_CLASSES = 171


def _segmenter(preset: str) -> ZeroShotSegmenter:
    cfg = clipzss.get_preset_config(preset, test_mode="whole")
    cfg = replace(cfg, student=StudentConfig(**{**cfg.student.__dict__, "pretrained": False}))
    seg = ZeroShotSegmenter(cfg, 512)
    seg.set_text_embeddings(torch.randn(NUM_CLASSES, 512), [f"class {i}" for i in range(NUM_CLASSES)])
    return seg.to(DEVICE).eval()


def _teacher():
    from ovcore.clip import ViTCLIPEncoder, create_clip

    return ViTCLIPEncoder(create_clip("ViT-B-16", None), 512).to(DEVICE).eval()


@pytest.mark.parametrize("provider", ["student", "reference"])
@pytest.mark.parametrize("preset", PRESETS)
def test_bench_clipzss_inference(measure, preset: str, provider: str) -> None:
    seg = _segmenter(preset)
    teacher = _teacher() if provider == "reference" else None
    images = torch.randint(0, 256, (BATCH, 3, 512, 512), dtype=torch.uint8, device=DEVICE)
    x = torch.randn(BATCH, 3, 512, 512, device=DEVICE)

    @torch.no_grad()
    def run():
        out = seg.predict(images)
        if teacher is not None:
            teacher(x)
        return out

    measure(run, kernel="clipzss_inference", provider=provider, mode=preset, shape=(BATCH, 3, 512, 512),
            dtype=torch.float32, rounds=3 if not HAS_CUDA else 20, warmup_rounds=1, classes=NUM_CLASSES)  # fmt: skip


def test_bench_clip_teacher_alone(measure) -> None:
    teacher = _teacher()
    x = torch.randn(BATCH, 3, 512, 512, device=DEVICE)

    @torch.no_grad()
    def run():
        return teacher(x)

    measure(run, kernel="clipzss_inference", provider="teacher", mode="clip_vit_b16", shape=(BATCH, 3, 512, 512),
            dtype=torch.float32, rounds=3 if not HAS_CUDA else 20, warmup_rounds=1, classes=NUM_CLASSES)  # fmt: skip
