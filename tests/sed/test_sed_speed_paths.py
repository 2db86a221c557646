"""CPU speed paths of SED inference: one-channel convs as GEMM + shifted adds, the per-class vocabulary memory and the
bf16 encoder option."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sed
from sed.layers import correlate_one_channel, head_logits


@pytest.mark.parametrize(
    "shape,kernel,padding",
    [((3, 5, 7, 6), 3, (1, 1)), ((2, 4, 5, 5), 9, (4, 4)), ((2, 3, 3, 4), 9, (4, 4)), ((1, 2, 6, 5), 5, (0, 2))],
)
@pytest.mark.parametrize("channels_last", [True, False])
def test_correlate_one_channel_equals_conv2d(shape, kernel, padding, channels_last) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(1, shape[1], kernel, kernel, generator=gen)
    ref = F.conv2d(x, weight, padding=padding)[:, 0]
    torch.testing.assert_close(correlate_one_channel(x, weight, padding), ref, atol=1e-5, rtol=1e-5)


def test_head_logits_equals_the_head() -> None:
    head = torch.nn.Conv2d(6, 1, 3, padding=1)
    x = torch.randn(4, 6, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(head_logits(head, x), head(x)[:, 0], atol=1e-5, rtol=1e-5)


class CountingText:
    """Wraps a CLIP's encode_text and counts the prompts it encodes."""

    def __init__(self, clip: torch.nn.Module) -> None:
        self.clip, self.prompts = clip, 0
        self.real = clip.encode_text

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        self.prompts += tokens.shape[0]
        return self.real(tokens)


def test_adding_one_class_encodes_one_class(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = sed.create_sed("sed_tiny")
    counter = CountingText(model.encoder.clip)
    # Force the model's own encode_text (the count) instead of the truncated-context path of ovcore.text.
    monkeypatch.setattr("ovcore.text._vocabulary.encode_text", lambda clip, tokens: counter(tokens))
    p = model.cfg.num_templates
    first = model.set_vocabulary(["cat", "dog, puppy"]).clone()
    assert counter.prompts == 3 * p
    counter.prompts = 0
    grown = model.set_vocabulary(["dog, puppy", "cat", "sky"])
    assert counter.prompts == p  # only "sky"
    torch.testing.assert_close(grown[:2], first[[1, 0]], rtol=0, atol=0)
    model.set_vocabulary(["cat"])
    assert counter.prompts == p


def test_bf16_encoder_option_is_close_to_fp32(tiny_model: sed.SED) -> None:
    images = torch.randint(0, 256, (1, 3, 40, 48), dtype=torch.uint8)
    ref = tiny_model.predict(images, k=None).probs
    tiny_model.encoder_bf16 = True
    try:
        out = tiny_model.predict(images, k=None).probs
    finally:
        tiny_model.encoder_bf16 = False
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert float((out - ref).abs().max()) < 0.05
    assert not tiny_model.encoder_bf16


def test_linear_attention_infer_equals_forward() -> None:
    from sed.layers import LinearAttentionLayer

    torch.manual_seed(0)
    layer = LinearAttentionLayer(16, 4)
    z = torch.randn(5, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer.infer(z), layer(z), atol=1e-5, rtol=1e-5)


def test_resize_back_of_rejected_rows_equals_the_full_resize() -> None:
    from sed.model import _resize_back

    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 6, 5, 4, generator=gen)
    probs[0, [0, 2, 5]] = 0  # rejected classes of image 0
    probs[1, :4] = 0
    probs[1, 4:, 0, 0] = 0  # a pixel where every class is 0: argmax gives class 0
    probs[0, 3, 1] = probs[0, 1, 1]  # ties keep the lowest class index
    full, full_labels = _resize_back(probs, (9, 7), rejected=False)
    out, labels = _resize_back(probs, (9, 7), rejected=True)
    torch.testing.assert_close(out, full, rtol=0, atol=0)
    assert torch.equal(labels, full_labels)
