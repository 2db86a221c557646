"""MaskCLIP model: predict, vocabularies, sliding windows and the training-free forward (tiny CPU presets)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import maskclip
from maskclip import MaskCLIP, rescale_size, window_boxes
from ovcore.clip import ConvNeXtCLIPEncoder
from ovcore.method import Prediction, SegmentationModel
from ovcore.text import encode_vocabulary, get_templates


@pytest.fixture(scope="module")
def vit_model() -> MaskCLIP:
    torch.manual_seed(0)
    return maskclip.create_maskclip("maskclip_vit_tiny", pretrained=None)


@pytest.fixture(scope="module")
def convnext_model() -> MaskCLIP:
    torch.manual_seed(0)
    return maskclip.create_maskclip("maskclip_convnext_tiny", pretrained=None, class_names=["sky", "grass", "sea"])


def _images(batch: int = 2, height: int = 80, width: int = 110, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, height, width), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("fixture", ["vit_model", "convnext_model"])
def test_predict_returns_probabilities_at_the_input_size(fixture: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture)
    assert isinstance(model, SegmentationModel)
    out = model.predict(_images())
    assert isinstance(out, Prediction)
    t = len(model.class_names)
    assert out.probs.shape == (2, t, 80, 110) and out.labels.shape == (2, 80, 110)
    assert out.labels.dtype == torch.int64
    torch.testing.assert_close(out.probs.sum(dim=1), torch.ones(2, 80, 110))
    assert torch.equal(out.labels, out.probs.argmax(dim=1))
    assert out.class_names == model.class_names and len(out.stats) == 2


def test_whole_image_prediction_equals_the_reference_computation(vit_model: MaskCLIP) -> None:
    images = _images(1, 64, 64)
    out = vit_model.predict(images, test_short_side=None, window_size=None)
    x = (images.float() - vit_model.pixel_mean) / vit_model.pixel_std
    _, dense = vit_model._dense(x)
    cos = torch.einsum("bdhw,td->bthw", F.normalize(dense, dim=1), vit_model.text_embeddings)
    cos = F.interpolate(cos, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.probs, (100.0 * cos).softmax(dim=1), rtol=1e-4, atol=1e-5)


def test_sliding_windows_average_the_per_window_scores(vit_model: MaskCLIP) -> None:
    x = vit_model.preprocess(_images(1, 96, 128))
    cfg = vit_model.cfg
    boxes = window_boxes(96, 128, cfg.window_size, cfg.window_stride)
    total, count = torch.zeros(1, len(vit_model.class_names), 96, 128), torch.zeros(96, 128)
    for y0, y1, x0, x1 in boxes:  # one window at a time, by hand
        total[..., y0:y1, x0:x1] += vit_model._window_cosines(x[..., y0:y1, x0:x1])
        count[y0:y1, x0:x1] += 1
    torch.testing.assert_close(vit_model.cosine_map(x), total / count, rtol=1e-5, atol=1e-6)


def test_one_window_covering_the_image_is_whole_image_inference(vit_model: MaskCLIP) -> None:
    images = _images(1, 64, 64)
    whole = vit_model.predict(images, test_short_side=None, window_size=None).probs
    window = vit_model.predict(images, test_short_side=None, window_size=64).probs
    torch.testing.assert_close(window, whole)


def test_window_grid_covers_the_image_like_mmseg() -> None:
    assert window_boxes(336, 448, 224, 112) == [
        (0, 224, 0, 224), (0, 224, 112, 336), (0, 224, 224, 448),
        (112, 336, 0, 224), (112, 336, 112, 336), (112, 336, 224, 448),
    ]
    # smaller than the window: one clipped window; an uneven size: the last window is shifted back to the border
    assert window_boxes(100, 150, 224, 112) == [(0, 100, 0, 150)]
    assert window_boxes(224, 300, 224, 112) == [(0, 224, 0, 224), (0, 224, 76, 300)]


def test_rescale_size_is_mmseg_keep_ratio_resize() -> None:
    assert rescale_size(375, 500, 336, 2048) == (336, 448)  # a VOC image goes down
    assert rescale_size(200, 300, 336, 2048) == (336, 504)  # and a small one goes up
    assert rescale_size(100, 3000, 336, 2048) == (68, 2048)  # the long side limit wins


def test_text_embeddings_are_the_normalised_template_mean(vit_model: MaskCLIP) -> None:
    names = ["red circle", "water, sea"]
    emb = vit_model.set_vocabulary(names)
    per_template = encode_vocabulary(vit_model.clip, vit_model.tokenizer, names, get_templates("imagenet"))
    torch.testing.assert_close(emb, F.normalize(per_template.mean(dim=1), dim=-1), rtol=1e-5, atol=1e-6)
    assert emb.shape == (2, vit_model.embed_dim) and len(get_templates("imagenet")) == 80


def test_new_vocabulary_without_rebuilding(vit_model: MaskCLIP, monkeypatch: pytest.MonkeyPatch) -> None:
    out = vit_model.predict(_images(1), class_names=["cat", "dog", "sky", "road", "tree"])
    assert out.probs.shape[1] == 5 and out.class_names == ["cat", "dog", "sky", "road", "tree"]
    assert vit_model.class_names == out.class_names
    calls: list[list[str]] = []
    encode = vit_model._encode_vocabulary
    monkeypatch.setattr(vit_model, "_encode_vocabulary", lambda n, t: calls.append(n) or encode(n, t))
    vit_model.set_vocabulary(["cat", "dog", "sky", "road", "tree"])  # in memory already
    vit_model.predict(_images(1), class_names=["boat"])
    assert calls == [["boat"]]
    assert vit_model.predict(_images(1)).probs.shape[1] == 1


def test_forward_raises_a_clear_error(vit_model: MaskCLIP) -> None:
    batch = {"image": _images(1), "label": torch.zeros(1, 80, 110, dtype=torch.int64)}
    with pytest.raises(RuntimeError, match="training-free"):
        vit_model(batch)


def test_bad_inputs_are_rejected(vit_model: MaskCLIP) -> None:
    with pytest.raises(ValueError, match="unknown MaskCLIP predict options"):
        vit_model.predict(_images(1), k=8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        vit_model.predict(torch.zeros(2, 32, 32, dtype=torch.uint8))  # not RGB
    with pytest.raises(ValueError, match="window_size"):
        vit_model.predict(_images(1), window_size=0)
    with pytest.raises(ValueError, match="at least one class"):
        vit_model.set_vocabulary([])


def test_convnext_dense_embedding_is_the_clip_head_per_location(convnext_model: MaskCLIP) -> None:
    x = convnext_model.preprocess(_images(1, 64, 96))
    _, dense = ConvNeXtCLIPEncoder(convnext_model.clip)(x)
    torch.testing.assert_close(convnext_model.dense_embeddings(x), F.normalize(dense, dim=1))
    assert convnext_model.backbone == "convnext" and dense.shape[-2:] == (2, 3)


def test_logit_scale_none_uses_the_clips_own(convnext_model: MaskCLIP) -> None:
    expected = float(convnext_model.clip.logit_scale.exp())
    assert convnext_model.logit_scale_value(convnext_model.cfg.replace(logit_scale=None)) == pytest.approx(expected)
    assert convnext_model.logit_scale_value() == 100.0
