"""The official-checkpoint converter: official keys and shapes for B and L (meta tensors), a real round trip
on the tiny preset through a detectron2-style file, the numpy allowlist, refusal of unsafe pickles, the CLI."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import sed
from sed.convert import OFFICIAL_PREFIXES, convert_official_checkpoint, infer_variant, main, read_checkpoint
from sed.layers import rename_official_key

CLIP = "sem_seg_head.predictor.clip_model."
DEC = "sem_seg_head.predictor.transformer."


def official_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Official state-dict names and shapes, written from the official SED modules (not from this package)."""
    chans = {"b": (128, 256, 512, 1024), "l": (192, 384, 768, 1536)}[variant]
    d = {"b": 640, "l": 768}[variant]
    layers = {"b": 12, "l": 16}[variant]
    s: dict[str, tuple[int, ...]] = {
        "positional_embedding": (77, d),
        "text_projection": (d, d),
        "logit_scale": (),
        "token_embedding.weight": (49408, d),
        "ln_final.weight": (d,),
        "ln_final.bias": (d,),
    }
    for i in range(layers):
        r = f"transformer.resblocks.{i}."
        s.update(
            {
                r + "ln_1.weight": (d,),
                r + "ln_1.bias": (d,),
                r + "ln_2.weight": (d,),
                r + "ln_2.bias": (d,),
                r + "attn.in_proj_weight": (3 * d, d),
                r + "attn.in_proj_bias": (3 * d,),
                r + "attn.out_proj.weight": (d, d),
                r + "attn.out_proj.bias": (d,),
                r + "mlp.c_fc.weight": (4 * d, d),
                r + "mlp.c_fc.bias": (4 * d,),
                r + "mlp.c_proj.weight": (d, 4 * d),
                r + "mlp.c_proj.bias": (d,),
            }
        )
    t = "visual.trunk."
    s.update(
        {
            t + "stem.0.weight": (chans[0], 3, 4, 4),
            t + "stem.0.bias": (chans[0],),
            t + "stem.1.weight": (chans[0],),
            t + "stem.1.bias": (chans[0],),
            t + "head.norm.weight": (chans[3],),
            t + "head.norm.bias": (chans[3],),
        }
    )
    for st, depth in enumerate((3, 3, 27, 3)):
        c = chans[st]
        if st:
            p = chans[st - 1]
            s.update(
                {
                    f"{t}stages.{st}.downsample.0.weight": (p,),
                    f"{t}stages.{st}.downsample.0.bias": (p,),
                    f"{t}stages.{st}.downsample.1.weight": (c, p, 2, 2),
                    f"{t}stages.{st}.downsample.1.bias": (c,),
                }
            )
        for j in range(depth):
            b = f"{t}stages.{st}.blocks.{j}."
            s.update(
                {
                    b + "gamma": (c,),
                    b + "conv_dw.weight": (c, 1, 7, 7),
                    b + "conv_dw.bias": (c,),
                    b + "norm.weight": (c,),
                    b + "norm.bias": (c,),
                    b + "mlp.fc1.weight": (4 * c, c),
                    b + "mlp.fc1.bias": (4 * c,),
                    b + "mlp.fc2.weight": (c, 4 * c),
                    b + "mlp.fc2.bias": (c,),
                }
            )
    if variant == "b":
        s["visual.head.proj.weight"] = (640, 1024)
    else:
        s.update(
            {
                "visual.head.mlp.fc1.weight": (1536, 1536),
                "visual.head.mlp.fc1.bias": (1536,),
                "visual.head.mlp.fc2.weight": (768, 1536),
            }
        )
    out = {CLIP + k: v for k, v in s.items()}
    g = {"b": (512, 256, 128), "l": (768, 384, 192)}[variant]
    dec: dict[str, tuple[int, ...]] = {"conv1.weight": (128, 80, 7, 7), "conv1.bias": (128,)}
    for i, (cin, cout) in enumerate(zip(g, (32, 16, 8), strict=True)):
        dec.update(
            {
                f"decoder_guidance_projection.{i}.0.weight": (cout, cin, 3, 3),
                f"decoder_guidance_projection.{i}.0.bias": (cout,),
            }
        )
    for i, (cin, cout) in enumerate(zip((80, 32, 16), (32, 16, 8), strict=True)):
        dec.update(
            {
                f"decoder_corr_guidance_projection.{i}.0.weight": (cin, cout, 2, 2),
                f"decoder_corr_guidance_projection.{i}.0.bias": (cout,),
            }
        )
    for n, (cin, cout, gd) in enumerate([(128, 64, 32), (64, 32, 16), (32, 16, 8)], 1):
        p = f"decoder{n}."
        dec.update(
            {
                p + "up.weight": (cin, cin - gd, 2, 2),
                p + "up.bias": (cin - gd,),
                p + "conv.double_conv.0.weight": (cout, cin + gd, 3, 3),
                p + "conv.double_conv.3.weight": (cout, cout, 3, 3),
                p + "cnext.gamma": (cin,),
                p + "cnext.dwconv.weight": (cin, 1, 9, 9),
                p + "cnext.dwconv.bias": (cin,),
                p + "cnext.pwconv1.weight": (4 * cin, cin),
                p + "cnext.pwconv1.bias": (4 * cin,),
                p + "cnext.pwconv2.weight": (cin, 4 * cin),
                p + "cnext.pwconv2.bias": (cin,),
                p + "attention.MLP.0.weight": (4 * cin, cin),
                p + "attention.MLP.0.bias": (4 * cin,),
                p + "attention.MLP.2.weight": (cin, 4 * cin),
                p + "attention.MLP.2.bias": (cin,),
            }
        )
        for suffix in ("weight", "bias"):
            dec.update(
                {
                    f"{p}conv.double_conv.1.{suffix}": (cout,),
                    f"{p}conv.double_conv.4.{suffix}": (cout,),
                    f"{p}cnext.norm.{suffix}": (cin,),
                    f"{p}attention.norm1.{suffix}": (cin,),
                    f"{p}attention.norm2.{suffix}": (cin,),
                }
            )
            for q in "qkv":
                dec[f"{p}attention.attention.{q}.{suffix}"] = (cin, cin) if suffix == "weight" else (cin,)
    for name, c in (("head0", 128), ("head1", 64), ("head2", 32), ("head", 16)):
        dec.update({f"{name}.weight": (1, c, 3, 3), f"{name}.bias": (1,)})
    out.update({DEC + k: v for k, v in dec.items()})
    return out


@pytest.mark.parametrize("variant,count", [("b", 608), ("l", 658)])
def test_official_b_and_l_land_where_they_belong(variant: str, count: int) -> None:
    shapes = official_shapes(variant)
    assert len(shapes) == count and sum(k.startswith(DEC) for k in shapes) == 115
    state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    assert infer_variant(state) == variant
    assert infer_variant({"model": state}) == infer_variant({"state_dict": state}) == variant  # wrapped checkpoints
    converted = convert_official_checkpoint({"model": state}, variant)
    assert len(converted) == count  # nothing left over, nothing invented
    for old, tensor in state.items():
        prefix = next(p for p in OFFICIAL_PREFIXES if old.startswith(p))
        assert converted[rename_official_key(OFFICIAL_PREFIXES[prefix] + old[len(prefix) :])] is tensor
    model = sed.create_sed(f"sed_convnext_{variant}_768", pretrained_clip=None, device="meta")
    missing, unexpected = model.load_state_dict(converted, strict=True, assign=True)
    assert not missing and not unexpected
    ours = dict(model.named_parameters())
    for old, new in [
        (DEC + "decoder1.attention.attention.q.weight", "decoder.decoder1.attention.attention.q.weight"),
        (DEC + "decoder_guidance_projection.0.0.weight", "decoder.decoder_guidance_projection.0.0.weight"),
        (CLIP + "visual.trunk.stages.2.blocks.26.gamma", "encoder.clip.visual.trunk.stages.2.blocks.26.gamma"),
        (CLIP + "token_embedding.weight", "encoder.clip.token_embedding.weight"),
    ]:
        assert tuple(ours[new].shape) == shapes[old]


def test_mismatches_are_reported() -> None:
    base = {k: torch.empty(v, device="meta") for k, v in official_shapes("b").items()}
    with pytest.raises(ValueError, match="missing"):
        convert_official_checkpoint({k: v for k, v in base.items() if "head0" not in k}, "b")
    with pytest.raises(ValueError, match="shape mismatches"):
        convert_official_checkpoint({**base, DEC + "conv1.bias": torch.empty(64, device="meta")}, "b")
    with pytest.raises(ValueError, match="unexpected"):
        convert_official_checkpoint({**base, DEC + "head3.weight": torch.empty(1, device="meta")}, "b")
    with pytest.raises(ValueError, match="outside"):
        convert_official_checkpoint({**base, "backbone.stem.weight": torch.empty(1, device="meta")}, "b")
    with pytest.raises(ValueError, match="missing"):
        convert_official_checkpoint(base, "l")  # B weights into the L layout


def _official_file(model: sed.SED, path, numpy_key: str | None = None):
    inverse = {v: k for k, v in OFFICIAL_PREFIXES.items()}
    state = {}
    for k, v in model.state_dict().items():
        prefix = next(p for p in inverse if k.startswith(p))
        state[inverse[prefix] + k[len(prefix) :]] = v.clone()
    if numpy_key is not None:
        state[numpy_key] = state[numpy_key].numpy()  # some detectron2 checkpoints store numpy arrays
    torch.save({"model": state, "__author__": "SED", "iteration": 79999, "scheduler": {"last_epoch": 3}}, path)
    return path


def test_tiny_round_trip_through_a_detectron2_file(tmp_path) -> None:
    torch.manual_seed(1)
    source = sed.create_sed("sed_tiny").eval()
    path = _official_file(source, tmp_path / "model_final.pth", numpy_key=DEC + "conv1.weight")
    converted = convert_official_checkpoint(path, "sed_tiny")
    assert set(converted) == set(source.state_dict())
    loaded = sed.create_sed("sed_tiny", checkpoint=path).eval()
    for k, v in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    names = ["sky", "grass"]
    torch.testing.assert_close(loaded.predict(images, names)["probs"], source.predict(images, names)["probs"])


def test_cli_writes_safetensors(tmp_path, capsys) -> None:
    source = sed.create_sed("sed_tiny")
    path = _official_file(source, tmp_path / "official.pth")
    out = tmp_path / "sed_tiny.safetensors"
    assert main([str(path), str(out), "--variant", "sed_tiny"]) == 0
    assert "converted" in capsys.readouterr().out
    loaded = sed.create_sed("sed_tiny", checkpoint=out)
    torch.testing.assert_close(loaded.decoder.conv1.weight, source.decoder.conv1.weight)
    again = sed.create_sed("sed_tiny", checkpoint=read_checkpoint(out))
    torch.testing.assert_close(again.decoder.head.bias, source.decoder.head.bias)
    # A .pth output holds {"model": state, "preset": name} (the README's `sed-convert ... OUT.pth --variant l`).
    as_pth = tmp_path / "sed_tiny.pth"
    assert main([str(path), str(as_pth), "--variant", "sed_tiny"]) == 0
    assert read_checkpoint(as_pth)["preset"] == "sed_tiny"
    from_pth = sed.create_sed("sed_tiny", checkpoint=as_pth)
    torch.testing.assert_close(from_pth.decoder.conv1.weight, source.decoder.conv1.weight)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_unsafe_pickles_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": _Payload()}}, path)
    with pytest.raises(ValueError, match="allowlist"):
        read_checkpoint(path)
    legacy = tmp_path / "legacy.pkl"
    with open(legacy, "wb") as f:
        pickle.dump({"model": {"x": _Payload()}}, f, protocol=2)
    with pytest.raises(ValueError, match="allowlist"):
        read_checkpoint(legacy)
    arrays = tmp_path / "arrays.pth"
    torch.save({"model": {"w": np.ones((2, 3), dtype=np.float32)}}, arrays)
    loaded = read_checkpoint(arrays)
    assert isinstance(loaded["model"]["w"], np.ndarray)
