"""MaskCLIP's value-embedding path of ``ovcore.clip.ViTCLIPEncoder(last_attention="value")`` on the tiny ViT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovcore.clip import ViTCLIPEncoder, create_clip
from ovcore.clip.encoders import value_embedding_block


@pytest.fixture(scope="module")
def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_clip("ovcore-vit-tiny")
    # Non-trivial norms and biases, so a dropped term cannot hide behind LayerNorm's default 1/0 parameters.
    with torch.no_grad():
        for name, p in model.visual.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_post.weight")):
                p.uniform_(0.5, 1.5)
            elif name.endswith(("bias",)):
                p.normal_(0.0, 0.1)
    return model.eval()


def _tokens(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """conv1 + CLS + positional embedding + ln_pre at the native grid, (B, L, width)."""
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    return visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)


def _hand_written_last_block(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MaskCLIP's last block written out: q and k unused, v = W_v ln_1(x) + b_v, attention output W_o v + b_o."""
    width = x.shape[-1]
    w_in, b_in = block.attn.in_proj_weight, block.attn.in_proj_bias
    v = block.ln_1(x) @ w_in[2 * width :].T + b_in[2 * width :]
    x = x + (v @ block.attn.out_proj.weight.T + block.attn.out_proj.bias)
    h = block.ln_2(x) @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias
    return x + (F.gelu(h) @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias)


def test_value_path_equals_hand_written_reference(tiny_vit: torch.nn.Module) -> None:
    visual = tiny_vit.visual
    images = torch.randn(2, 3, 64, 64)
    x = _tokens(visual, images)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    x = _hand_written_last_block(visual.transformer.resblocks[-1], x)
    x = visual.ln_post(x) @ visual.proj
    cls, dense = ViTCLIPEncoder(tiny_vit, last_attention="value")(images)
    torch.testing.assert_close(cls, x[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense, x[:, 1:].transpose(1, 2).reshape(2, -1, 4, 4), rtol=1e-5, atol=1e-5)


def test_value_path_is_the_normal_encoder_with_identity_attention_in_the_last_block(tiny_vit: torch.nn.Module) -> None:
    # The normal open_clip blocks, except that the last block's attention may only look at each token itself
    # (an additive mask of -inf off the diagonal): its attention matrix is then the identity.
    visual = tiny_vit.visual
    images = torch.randn(2, 3, 64, 64)
    x = _tokens(visual, images)
    blocks = visual.transformer.resblocks
    for block in blocks[:-1]:
        x = block(x)
    length = x.shape[1]
    eye_mask = torch.full((length, length), float("-inf")).fill_diagonal_(0.0)
    x = blocks[-1](x, attn_mask=eye_mask)
    expected = visual.ln_post(x) @ visual.proj
    _, dense = ViTCLIPEncoder(tiny_vit, last_attention="value")(images)
    torch.testing.assert_close(dense, expected[:, 1:].transpose(1, 2).reshape(2, -1, 4, 4), rtol=1e-5, atol=1e-5)


def test_standard_mode_is_unchanged_and_differs_from_value_mode(tiny_vit: torch.nn.Module) -> None:
    images = torch.randn(1, 3, 64, 64)
    cls, dense = ViTCLIPEncoder(tiny_vit)(images)
    torch.testing.assert_close(cls, tiny_vit.encode_image(images), rtol=1e-5, atol=1e-5)
    _, value_dense = ViTCLIPEncoder(tiny_vit, last_attention="value")(images)
    assert not torch.allclose(dense, value_dense, atol=1e-3)


def test_value_block_is_token_wise(tiny_vit: torch.nn.Module) -> None:
    # No token mixing: one token alone gives the same output as inside a sequence, in either layout.
    block = tiny_vit.visual.transformer.resblocks[-1]
    x = torch.randn(2, 5, 64)
    full = value_embedding_block(block, x)
    torch.testing.assert_close(value_embedding_block(block, x[:, 2:3]), full[:, 2:3])
    torch.testing.assert_close(value_embedding_block(block, x.transpose(0, 1)), full.transpose(0, 1))


def test_value_mode_at_another_input_size(tiny_vit: torch.nn.Module) -> None:
    encoder = ViTCLIPEncoder(tiny_vit, last_attention="value", pos_interpolation="bicubic")
    cls, dense = encoder(torch.randn(1, 3, 96, 128))
    assert cls.shape == (1, 64) and dense.shape == (1, 64, 6, 8)


def test_bad_last_attention_is_rejected(tiny_vit: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="last_attention must be one of"):
        ViTCLIPEncoder(tiny_vit, last_attention="identity")
