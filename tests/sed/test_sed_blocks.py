"""Each decoder block's `forward` and fast inference methods against the official code's block (official_sed.py),
and the loading of state dicts that use the released code's sub-layer names (`double_conv.0`, `MLP.0`, ...)."""

from __future__ import annotations

import pytest
import torch
from official_sed import class_attention, cnext, double_conv, up_layer
from sed_testing import perturb_norms

import sed
from sed._parallel import ChunkRunner
from sed.convert import load_sed_checkpoint
from sed.layers import (
    OFFICIAL_SUBLAYER_NAMES,
    ClassTransformerLayer,
    ConvNextBlock,
    DoubleConv,
    Up,
    rename_official_key,
)

CL = torch.channels_last
CPU = torch.device("cpu")


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def _runner() -> ChunkRunner:
    """Two worker threads and a tiny chunk budget: one row / a few pixels per chunk."""
    return ChunkRunner(CPU, workers=2, budget=256)


def test_convnext_block_forward_and_infer() -> None:
    torch.manual_seed(0)
    block = perturb_norms(ConvNextBlock(16, kernel_size=5))
    x = torch.randn(5, 16, 7, 6)
    ref = cnext(block, x)
    _close(block(x), ref)
    with torch.no_grad(), _runner() as run:
        _close(block.infer(x.contiguous(memory_format=CL), run), ref)


@pytest.mark.parametrize("pool", [1, 2])
def test_class_transformer_forward_and_infer(pool: int) -> None:
    torch.manual_seed(1)
    block = perturb_norms(ClassTransformerLayer(16, num_heads=4))
    x = torch.randn(2, 5, 16, 6, 6)  # (B, T, C, h, w); the official layout is (B, C, T, h, w)
    ref = class_attention(block, x.transpose(1, 2), pool).transpose(1, 2)
    _close(block(x, pool), ref)
    for b in range(2):
        rows = x[b].contiguous(memory_format=CL)
        with torch.no_grad(), _runner() as run:
            out = block.infer_(rows, pool, run)
        assert out is rows  # in place
        _close(out, ref[b])


def test_double_conv_forward_and_guided() -> None:
    torch.manual_seed(2)
    block = perturb_norms(DoubleConv(12 + 4 + 6, 32))
    up, skip, corr = torch.randn(2, 3, 12, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 3, 6, 8, 8)
    cat = torch.cat([up, skip.unsqueeze(1).expand(-1, 3, -1, -1, -1), corr], dim=2).flatten(0, 1)
    ref = double_conv(block, cat)
    _close(block(cat), ref)
    _close(block.forward_guided(up, skip, corr).flatten(0, 1), ref)
    with pytest.raises(ValueError, match="conv1"):
        block.split_conv1((12, 4, 5))


@pytest.mark.parametrize("pool", [1, 2])
def test_up_forward_gradients_and_inference_methods(pool: int) -> None:
    torch.manual_seed(3)
    layer = perturb_norms(Up(32, 16, guidance_channels=8, kernel_size=5, num_heads=4))
    b, t, h = 2, 3, 4
    x, skip = torch.randn(b, t, 32, h, h), torch.randn(b, 8, 2 * h, 2 * h)
    corr = torch.randn(b, t, 8, 2 * h, 2 * h)
    ref = up_layer(layer, x.flatten(0, 1), skip, corr.flatten(0, 1), b, pool).unflatten(0, (b, t))
    out = layer(x, skip, corr, pool)
    _close(out, ref)
    weights = torch.randn_like(ref)
    params = list(layer.parameters())
    ours = torch.autograd.grad((out * weights).sum(), params)
    theirs = torch.autograd.grad((ref * weights).sum(), params)
    for g, r in zip(ours, theirs, strict=True):
        _close(g, r)
    with torch.no_grad():
        for i in range(b):
            with _runner() as run:
                fam = layer.fam_(x[i].contiguous(memory_format=CL), pool, run)
                fused = layer.fuse_sfm(skip[i : i + 1], (2 * h, 2 * h))
            _close(layer.sfm_chunk(fam, corr[i].contiguous(memory_format=CL), fused), ref[i])


def _official_key(key: str) -> str:
    """Inverse of `rename_official_key` (the released code's names)."""
    for old, new in OFFICIAL_SUBLAYER_NAMES.items():
        if ("." + key).count("." + new):
            return ("." + key).replace("." + new, "." + old, 1)[1:]
    return key


def test_rename_official_key() -> None:
    assert rename_official_key("decoder.decoder1.conv.double_conv.0.weight") == "decoder.decoder1.conv.conv1.weight"
    assert rename_official_key("decoder3.conv.double_conv.4.bias") == "decoder3.conv.norm2.bias"
    assert rename_official_key("attention.MLP.2.weight") == "attention.fc2.weight"
    for key in ("decoder.decoder1.conv.conv1.weight", "decoder.decoder2.attention.attention.q.weight", "head.bias"):
        assert rename_official_key(key) == key
    other = "decoder.decoder1.xconv.double_conv.0.weight"  # only whole sub-module names are renamed
    assert rename_official_key(other) == other


def test_official_sublayer_names_load_into_a_layer_and_a_decoder() -> None:
    torch.manual_seed(4)
    source = perturb_norms(Up(32, 16, guidance_channels=8))
    legacy = {_official_key(k): v for k, v in source.state_dict().items()}
    assert "conv.double_conv.3.weight" in legacy and "attention.MLP.0.bias" in legacy
    target = Up(32, 16, guidance_channels=8)
    target.load_state_dict(legacy, strict=True)
    assert "conv.double_conv.3.weight" in legacy  # the caller's dict is not renamed in place
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v, rtol=0, atol=0)
    dims = dict(hidden_dim=32, decoder_dims=(16, 16, 16), guidance_dims=(8, 8, 8), guidance_proj_dims=(8, 8, 8))
    agg_legacy = {_official_key(k): v for k, v in sed.Aggregator(**dims).state_dict().items()}
    missing, unexpected = sed.Aggregator(**dims).load_state_dict(agg_legacy, strict=True)
    assert not missing and not unexpected


def test_checkpoint_with_official_sublayer_names_loads(tmp_path) -> None:
    """A checkpoint saved by this package before the rename (same names as the released code) still loads."""
    torch.manual_seed(5)
    source = sed.create_sed("sed_tiny")
    perturb_norms(source.decoder)
    legacy = {_official_key(k): v for k, v in source.state_dict().items()}
    assert any("double_conv" in k for k in legacy)
    path = tmp_path / "old.pth"
    torch.save({"model": legacy}, path)
    target = sed.create_sed("sed_tiny")
    load_sed_checkpoint(target, path)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v, rtol=0, atol=0)
