"""CLIP loading: factory, weights registry and offline behaviour, checkpoint formats, dense encoders."""

from __future__ import annotations

import argparse

import open_clip
import pytest
import torch

import ovcore.clip as oc
from ovcore.clip import (
    ConvNeXtCLIPEncoder,
    ViTCLIPEncoder,
    _pretrained,
    create_clip,
    get_tokenizer,
    image_mean_std,
    load_clip_weights,
    read_state_dict,
    save_clip_weights,
)

TINY_CONVNEXT = ("ovcore-convnext-tiny", "ovcore-convnext-tiny-mlp")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def tiny_vit() -> torch.nn.Module:
    return create_clip("ovcore-vit-tiny")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to download weights fails the test: offline errors must come from the cache check alone."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", refuse)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", refuse)


# --- factory -----------------------------------------------------------------------------------------------------


def test_tiny_configs_are_registered():
    assert set(oc.TINY_MODELS) <= set(open_clip.list_models())
    assert set(oc.TINY_MODELS) <= set(oc.list_clip_models())
    assert oc.clip_model_config("ovcore-convnext-tiny")["embed_dim"] == 64


@pytest.mark.parametrize("name", ["ovcore-convnext-tiny", "ovcore-convnext-tiny-mlp", "ovcore-vit-tiny"])
def test_create_tiny_random_init(name):
    model = create_clip(name)
    assert isinstance(model, open_clip.CLIP)
    assert not model.training
    tokens = get_tokenizer(name)(["a photo of a cat", "sky"])
    assert tokens.shape == (2, 32)
    assert model.encode_text(tokens).shape == (2, 64)


def test_bad_model_name_lists_near_matches():
    with pytest.raises(ValueError, match="unknown CLIP model") as info:
        create_clip("convnext_base_w32")
    assert "convnext_base_w_320" in str(info.value)
    with pytest.raises(ValueError, match="unknown CLIP model"):
        get_tokenizer("ViT-B-61x")


def test_bad_tag_and_precision():
    with pytest.raises(ValueError, match="unknown pretrained tag 'laion9000'") as info:
        create_clip("convnext_base_w_320", "laion9000")
    assert "laion_aesthetic_s13b_b82k" in str(info.value)  # known tags are listed
    with pytest.raises(ValueError, match="precision"):
        create_clip("ovcore-vit-tiny", precision="fp8")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        create_clip("ovcore-vit-tiny", "/nonexistent/missing.pt")


def test_vit_b_16_slash_alias_and_meta_device():
    model = create_clip("ViT-B/16", device="meta")
    assert model.visual.proj.shape == (768, 512)
    with pytest.raises(ValueError, match="meta"):
        create_clip("ovcore-vit-tiny", "openai", device="meta")


@pytest.mark.parametrize(
    ("name", "channels", "dim", "num_text", "num_visual", "head_keys"),
    [
        ("convnext_base_w_320", (128, 256, 512, 1024), 640, 150, 343, ["visual.head.proj.weight"]),
        (
            "convnext_large_d_320",
            (192, 384, 768, 1536),
            768,
            198,
            345,
            ["visual.head.mlp.fc1.weight", "visual.head.mlp.fc1.bias", "visual.head.mlp.fc2.weight"],
        ),
    ],
)
def test_sed_convnext_configs_match_spec(name, channels, dim, num_text, num_visual, head_keys):
    # shapes only (meta device): the official SED checkpoint layout without allocating 180M/350M parameters
    model = create_clip(name, device="meta")
    encoder = ConvNeXtCLIPEncoder(model)
    assert encoder.channels == channels and encoder.embed_dim == dim and encoder.strides == (4, 8, 16, 32)
    keys = list(model.state_dict())
    visual = [k for k in keys if k.startswith("visual.")]
    assert (len(keys) - len(visual), len(visual)) == (num_text, num_visual)
    assert set(head_keys) <= set(keys) and "visual.trunk.head.norm.weight" in keys
    assert not any(k.startswith("visual.head") and k.endswith("bias") and "fc2" in k for k in keys)
    assert isinstance(model.visual.trunk.norm_pre, torch.nn.Identity)


@pytest.fixture(scope="module")
def convnext_base() -> torch.nn.Module:
    return create_clip("convnext_base_w_320")


def test_convnext_base_w_320_builds_and_dense_head_matches_encode_image(convnext_base):
    assert sum(p.numel() for p in convnext_base.parameters()) == 179_385_345  # the official SED-B CLIP size
    encoder = ConvNeXtCLIPEncoder(convnext_base)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features, dense = encoder(images)
        reference = convnext_base.encode_image(images)
    assert [f.shape[1] for f in features.values()] == [128, 256, 512, 1024]
    assert dense.shape == (1, 640, 1, 1)
    # exact: the same LayerNorm and GEMMs run on the same numbers, only the pooling (a mean of one value) is skipped
    torch.testing.assert_close(dense[:, :, 0, 0], reference, rtol=0, atol=0)


def test_drop_overrides():
    model = create_clip("ovcore-convnext-tiny-mlp", drop_path=0.2, head_drop=0.1)
    assert model.visual.trunk.stages[3].blocks[0].drop_path.drop_prob == pytest.approx(0.2)
    assert model.visual.head.mlp.drop1.p == pytest.approx(0.1)
    plain = create_clip("ovcore-convnext-tiny")
    assert isinstance(plain.visual.trunk.stages[3].blocks[0].drop_path, torch.nn.Identity)
    with pytest.raises(ValueError, match="timm"):
        create_clip("ovcore-vit-tiny", drop_path=0.1)


def test_image_mean_std():
    mean, std = image_mean_std("convnext_base_w_320")
    # SED's MODEL.CLIP_PIXEL_MEAN / STD are these values times 255
    assert [round(m * 255, 4) for m in mean] == [122.7709, 116.7460, 104.0937]
    assert [round(s * 255, 4) for s in std] == [68.5005, 66.6322, 70.3232]
    assert image_mean_std("ViT-B-16:openai") == (mean, std)
    assert image_mean_std(create_clip("ovcore-vit-tiny")) == (mean, std)
    with pytest.raises(ValueError):
        image_mean_std("ViT-B-16:nope")


# --- weights registry and the offline path ------------------------------------------------------------------------


def test_registry_lists_the_methods_weights_and_agrees_with_open_clip():
    pairs = oc.list_pretrained()
    assert pairs == [
        ("convnext_base_w_320", "laion_aesthetic_s13b_b82k"),
        ("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup"),
        ("ViT-B-16", "openai"),
    ]
    assert "ViT-B-16:openai" in oc.list_pretrained(as_str=True)
    for model, tag in pairs:
        ours = oc.get_pretrained_weights(model, tag)
        theirs = open_clip.pretrained.get_pretrained_cfg(model, tag)
        assert (ours.hf_hub, ours.quick_gelu) == (theirs["hf_hub"], theirs.get("quick_gelu", False))
    assert oc.get_pretrained_weights("ViT-B-16", "laion400m_e32").hf_hub  # open_clip fallback
    assert oc.get_pretrained_weights("ViT-B-16", "nope") is None


@pytest.mark.parametrize(
    ("model", "tag", "repo_dir"),
    [
        (
            "convnext_base_w_320",
            "laion_aesthetic_s13b_b82k",
            "models--laion--CLIP-convnext_base_w_320-laion_aesthetic-s13B-b82K",
        ),
        (
            "convnext_large_d_320",
            "laion2b_s29b_b131k_ft_soup",
            "models--laion--CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup",
        ),
        ("ViT-B-16", "openai", "models--timm--vit_base_patch16_clip_224.openai"),
    ],
)
def test_offline_missing_tag_fails_at_once_naming_model_tag_and_path(monkeypatch, tmp_path, model, tag, repo_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError) as info:
        create_clip(model, tag, cache_dir=tmp_path)
    message = str(info.value)
    assert repr(model) in message and repr(tag) in message
    assert str(tmp_path / repo_dir / "snapshots") in message
    assert "open_clip_pytorch_model.bin" in message and "HF_HUB_OFFLINE" in message


def test_expected_paths_follow_the_hub_cache_layout(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    paths = oc.expected_weight_paths("ViT-B-16", "openai")
    assert (
        paths[0]
        == tmp_path / "models--timm--vit_base_patch16_clip_224.openai/snapshots/<revision>/open_clip_model.safetensors"
    )
    assert paths[-1].name == "ViT-B-16.pt"  # OpenAI's URL download location
    assert oc.hf_hub_cache_dir() == tmp_path


def _fake_hub_file(cache: object, repo_id: str, filename: str) -> object:
    """Lay out ``<cache>/models--org--name/{refs/main, snapshots/<commit>/<filename>}`` like huggingface_hub."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    return repo / "snapshots" / commit / filename


@pytest.mark.parametrize("filename", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_tag_resolves_from_the_hub_cache(monkeypatch, tmp_path, tiny_vit, filename):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = oc.ClipWeights("ovcore-vit-tiny", "testtag", hf_hub="ovcore/tiny-vit/", quick_gelu=False)
    monkeypatch.setitem(_pretrained._REGISTRY, ("ovcore-vit-tiny", "testtag"), weights)
    target = _fake_hub_file(tmp_path, "ovcore/tiny-vit", filename)
    save_clip_weights(tiny_vit, target)
    assert oc.find_cached_weights("ovcore-vit-tiny", "testtag", tmp_path) == target
    loaded = create_clip("ovcore-vit-tiny", "testtag", cache_dir=tmp_path)
    assert _same_weights(loaded, tiny_vit)


def test_quick_gelu_follows_the_tag(monkeypatch, tmp_path, tiny_vit):
    weights = oc.ClipWeights("ovcore-vit-tiny", "qg", hf_hub="ovcore/qg/", quick_gelu=True)
    monkeypatch.setitem(_pretrained._REGISTRY, ("ovcore-vit-tiny", "qg"), weights)
    save_clip_weights(tiny_vit, _fake_hub_file(tmp_path, "ovcore/qg", "open_clip_pytorch_model.bin"))
    model = create_clip("ovcore-vit-tiny", "qg", cache_dir=tmp_path)
    act = model.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"


# --- checkpoint files --------------------------------------------------------------------------------------------


def _wrap(state: dict, how: str) -> dict:
    if how == "plain":
        return state
    if how == "module":
        return {f"module.{k}": v for k, v in state.items()}
    if how == "sed":  # a whole SED checkpoint: detectron2 "model" wrapper, CLIP under a prefix, decoder beside it
        inner = {f"sem_seg_head.predictor.clip_model.{k}": v for k, v in state.items()}
        inner["sem_seg_head.predictor.transformer.conv1.weight"] = torch.zeros(2, 2)
        return {"model": inner, "iteration": 5}
    return {how: state, "epoch": 3}


@pytest.mark.parametrize(
    ("suffix", "how"),
    [
        (".pt", "plain"),
        (".bin", "plain"),
        (".pth", "plain"),
        (".pt", "state_dict"),
        (".pth", "model"),
        (".bin", "module"),
        (".pth", "sed"),
    ],
)
def test_torch_checkpoints_round_trip(tmp_path, tiny_vit, suffix, how):
    path = tmp_path / f"weights{suffix}"
    torch.save(_wrap(tiny_vit.state_dict(), how), path)
    assert _same_weights(create_clip("ovcore-vit-tiny", str(path) if how == "plain" else path), tiny_vit)


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("ovcore-vit-tiny", ".safetensors"),
        ("ovcore-vit-tiny", ".pt"),
        ("ovcore-vit-tiny", ".bin"),
        ("ovcore-vit-tiny", ".pth"),
        ("ovcore-convnext-tiny-mlp", ".safetensors"),
        ("ovcore-convnext-tiny", ".bin"),
    ],
)
def test_save_clip_weights_round_trip(tmp_path, name, suffix):
    source = create_clip(name)
    path = save_clip_weights(source, tmp_path / "sub" / f"w{suffix}")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # atomic: no temporary left behind
    assert _same_weights(create_clip(name, path), source)
    target = create_clip(name)
    load_clip_weights(target, read_state_dict(path))
    assert _same_weights(target, source)


def test_safetensors_with_module_prefix(tmp_path, tiny_vit):
    from safetensors.torch import save_file

    state = {f"module.{k}": v.contiguous() for k, v in tiny_vit.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    assert _same_weights(create_clip("ovcore-vit-tiny", tmp_path / "w.safetensors"), tiny_vit)


def test_torchscript_archive_keeps_only_tensors(tmp_path, tiny_vit):
    # OpenAI's original ViT-B-16.pt is a TorchScript archive; torch.load(weights_only=True) cannot read it
    path = tmp_path / "openai_style.pt"
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(tiny_vit), path)
    assert _same_weights(create_clip("ovcore-vit-tiny", path), tiny_vit)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_corrupt_file_error_names_the_file(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="broken") as info:
        create_clip("ovcore-vit-tiny", path)
    assert str(path) in str(info.value)


def test_arbitrary_pickles_are_refused(tmp_path, tiny_vit):
    path = tmp_path / "training_state.pth"
    torch.save({"state_dict": tiny_vit.state_dict(), "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(ValueError, match="weights_only") as info:
        create_clip("ovcore-vit-tiny", path)
    assert str(path) in str(info.value)


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path, tiny_vit):
    state = dict(tiny_vit.state_dict())
    del state["visual.proj"]
    state["visual.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        create_clip("ovcore-vit-tiny", path)
    message = str(info.value)
    assert str(path) in message and "visual.proj" in message and "visual.extra" in message
    target = create_clip("ovcore-vit-tiny")
    load_clip_weights(target, state, strict=False)  # non-strict tolerates the key sets, keeps loading the rest
    torch.testing.assert_close(target.visual.conv1.weight, tiny_vit.visual.conv1.weight)

    state = dict(tiny_vit.state_dict())
    state["visual.proj"] = torch.zeros(64, 32)
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"1 shape mismatches \('visual.proj: checkpoint \(64, 32\) vs model \(64, 64\)"
    ):
        create_clip("ovcore-vit-tiny", path)
    torch.save(create_clip("ovcore-convnext-tiny").state_dict(), path)  # another architecture altogether
    with pytest.raises(ValueError, match="missing keys .*'visual.class_embedding'.*unexpected keys .*'visual.trunk"):
        create_clip("ovcore-vit-tiny", path)


def test_unsupported_suffix_and_empty_checkpoint(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unsupported checkpoint"):
        read_state_dict(path)
    torch.save({}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="no state dict"):
        read_state_dict(tmp_path / "empty.pt")


# --- dense encoders ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY_CONVNEXT)
def test_convnext_features_have_strides_and_channels(name):
    encoder = ConvNeXtCLIPEncoder(create_clip(name))
    assert encoder.channels == (16, 32, 64, 128) and encoder.embed_dim == 64
    features, dense = encoder(torch.randn(2, 3, 64, 96))
    assert list(features) == ["res2", "res3", "res4", "res5"]
    for (key, feat), channels in zip(features.items(), encoder.channels, strict=True):
        stride = oc.FEATURE_STRIDES[key]
        assert feat.shape == (2, channels, 64 // stride, 96 // stride)
    assert dense.shape == (2, 64, 2, 3)
    torch.testing.assert_close(encoder.dense_embedding(features["res5"]), dense)


@pytest.mark.parametrize("name", TINY_CONVNEXT)
def test_dense_embedding_equals_encode_image_on_1x1_maps(name):
    model = create_clip(name)
    encoder = ConvNeXtCLIPEncoder(model)
    images = torch.randn(3, 3, 32, 32)  # 32 / 32 = a 1x1 final map
    with torch.no_grad():
        _, dense = encoder(images)
        reference = model.encode_image(images)
    assert dense.shape == (3, 64, 1, 1)
    torch.testing.assert_close(dense[:, :, 0, 0], reference, rtol=0, atol=0)


def test_dense_embedding_is_the_head_per_location():
    model = create_clip("ovcore-convnext-tiny-mlp")
    encoder = ConvNeXtCLIPEncoder(model)
    res5 = torch.randn(2, 128, 3, 2)
    dense = encoder.dense_embedding(res5)
    # the same head on each location taken as a 1x1 map (SED's flatten-to-pixels formulation)
    pixels = res5.permute(0, 2, 3, 1).reshape(-1, 128, 1, 1)
    per_pixel = model.visual.head(model.visual.trunk.head(pixels)).reshape(2, 3, 2, 64).permute(0, 3, 1, 2)
    torch.testing.assert_close(dense, per_pixel, rtol=1e-5, atol=1e-6)


def test_dense_embedding_carries_gradients_to_the_trunk():
    model = create_clip("ovcore-convnext-tiny")
    encoder = ConvNeXtCLIPEncoder(model)
    _, dense = encoder(torch.randn(1, 3, 64, 64))
    dense.square().sum().backward()
    assert model.visual.trunk.stem[0].weight.grad is not None
    assert model.visual.head.proj.weight.grad is not None


def test_encoders_reject_the_wrong_tower(tiny_vit):
    with pytest.raises(ValueError, match="ConvNeXt"):
        ConvNeXtCLIPEncoder(tiny_vit)
    with pytest.raises(ValueError, match="VisionTransformer"):
        ViTCLIPEncoder(create_clip("ovcore-convnext-tiny"))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ConvNeXtCLIPEncoder(create_clip("ovcore-convnext-tiny"))(torch.randn(3, 32, 32))


def test_vit_cls_equals_encode_image_at_native_size(tiny_vit):
    encoder = ViTCLIPEncoder(tiny_vit)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cls, dense = encoder(images)
        reference = tiny_vit.encode_image(images)
    torch.testing.assert_close(cls, reference, rtol=1e-5, atol=1e-6)
    assert dense.shape == (2, 64, 4, 4)
    assert encoder.grid_size == (4, 4) and encoder.embed_dim == 64


@pytest.mark.parametrize(("height", "width"), [(96, 96), (48, 80)])
def test_vit_at_other_sizes_matches_open_clip_resized_model(tiny_vit, height, width):
    encoder = ViTCLIPEncoder(tiny_vit, input_size=(height, width), pos_interpolation="bicubic")
    assert encoder.grid_size == (height // 16, width // 16)
    images = torch.randn(2, 3, height, width)
    with torch.no_grad():
        cls, dense = encoder(images)
    assert cls.shape == (2, 64) and dense.shape == (2, 64, height // 16, width // 16)
    if height == width:  # open_clip resizes square grids only; its bicubic upsampling must agree with ours
        resized = open_clip.create_model("ovcore-vit-tiny", force_image_size=height)
        load_clip_weights(resized, tiny_vit.state_dict())
        resized.eval()
        with torch.no_grad():
            torch.testing.assert_close(cls, resized.encode_image(images), rtol=1e-4, atol=1e-5)


def test_vit_patch_tokens_are_projected_like_the_cls(tiny_vit):
    encoder = ViTCLIPEncoder(tiny_vit, input_size=512)
    assert encoder.grid_size == (32, 32)  # the CLIP-ZSS teacher's grid at 512x512
    images = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        cls, dense = encoder(images)
        visual = tiny_vit.visual
        x = visual.conv1(images).flatten(2).transpose(1, 2)
        x = torch.cat([visual.class_embedding.expand(1, 1, -1), x], 1) + encoder.positional_embedding((2, 3))
        x = visual.ln_post(visual.transformer(visual.ln_pre(x))) @ visual.proj
    torch.testing.assert_close(dense.flatten(2).transpose(1, 2), x[:, 1:])
    torch.testing.assert_close(cls, x[:, 0])
