"""Presets, shapes of B / L / tiny models, vocabulary handling, predict(), losses and optimiser groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import sed
from ovcore.text import get_templates
from ovcore.train import OptimConfig, build_optimizer, build_param_groups
from ovcore.train.optim import NORM_TYPES, named_trainable_parameters
from sed.layers import ChannelsLastLayerNorm

# ----------------------------------------------------------------------------------------------------- presets


def test_presets_are_listed_and_filterable() -> None:
    names = sed.list_presets()
    for name in ["sed_convnext_b_768", "sed_convnext_l_768", "sed_convnext_b_768_fast", "sed_tiny", "sed_tiny_mlp"]:
        assert name in names
    assert sed.list_presets("sed_convnext_l*") == ["sed_convnext_l_768", "sed_convnext_l_768_fast"]


def test_unknown_preset_and_override_raise() -> None:
    with pytest.raises(ValueError, match="available presets.*sed_tiny"):
        sed.create_sed("sed_convnext_h_768")
    with pytest.raises(ValueError, match="unknown SED config fields"):
        sed.create_sed("sed_tiny", decoder_width=3)


@pytest.mark.parametrize(
    "preset,channels,embed_dim,tensors,decoder_params",
    [
        ("sed_convnext_b_768", (128, 256, 512, 1024), 640, 608, 1_376_396),
        ("sed_convnext_l_768", (192, 384, 768, 1536), 768, 658, 1_473_164),
    ],
)
def test_official_sizes_on_meta(preset, channels, embed_dim, tensors, decoder_params) -> None:
    """B and L built without weights: encoder channels, Dt and the official state-dict size."""
    model = sed.create_sed(preset, pretrained_clip=None, device="meta")
    assert model.encoder.channels == channels and model.encoder.embed_dim == embed_dim
    assert len(model.state_dict()) == tensors
    assert sum(p.numel() for p in model.decoder.parameters()) == decoder_params
    assert model.cfg.input_size == 768 and model.cfg.num_templates == 80
    assert model.decoder.decoder_guidance_projection[0][0].weight.shape == (32, channels[2], 3, 3)


def test_convnext_b_forward_shapes_small_input() -> None:
    """One real ConvNeXt-B forward (random init) at 64x64: encoder features, cost map and decoder outputs."""
    model = sed.create_sed("sed_convnext_b_768", pretrained_clip=None, input_size=64).eval()
    model.set_text_embeddings(F.normalize(torch.randn(3, 80, 640), dim=-1), ["a", "b", "c"])
    with torch.no_grad():
        x = model.preprocess(torch.randint(0, 256, (1, 3, 80, 48), dtype=torch.uint8))
        feats, dense = model.encoder(x)
        cost, skips = model.features(x)
        logits, aux = model.decoder(cost, skips)
    assert x.shape == (1, 3, 64, 64)
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "res2": (128, 16, 16),
        "res3": (256, 8, 8),
        "res4": (512, 4, 4),
        "res5": (1024, 2, 2),
    }
    assert dense.shape == (1, 640, 2, 2) and cost.shape == (1, 80, 3, 2, 2)
    assert logits.shape == (1, 3, 16, 16) and [a.shape[-1] for a in aux] == [2, 4, 8]


@pytest.mark.parametrize("preset", ["sed_tiny", "sed_tiny_mlp"])
def test_tiny_presets_every_stage(preset: str) -> None:
    model = sed.create_sed(preset).eval()
    s = model.cfg.input_size
    x = model.preprocess(torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8))
    with torch.no_grad():
        feats, dense = model.encoder(x)
        cost, skips = model.features(x)
        logits, aux = model.decoder(cost, skips)
    t = len(model.class_names)
    assert t == 8 and model.text_embeddings.shape == (8, 80, model.encoder.embed_dim)
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [
        (s // 4,) * 2,
        (s // 8,) * 2,
        (s // 16,) * 2,
        (s // 32,) * 2,
    ]
    assert cost.shape == (2, 80, t, s // 32, s // 32)
    assert [tuple(f.shape[1:]) for f in skips] == [(64, s // 16, s // 16), (32, s // 8, s // 8), (16, s // 4, s // 4)]
    assert logits.shape == (2, t, s // 4, s // 4)
    assert [tuple(a.shape) for a in aux] == [(2, t, s // 32, s // 32), (2, t, s // 16, s // 16), (2, t, s // 8, s // 8)]


# -------------------------------------------------------------------------------------------------- vocabulary


def test_text_embeddings_are_a_non_persistent_buffer(tiny_model: sed.SED) -> None:
    assert "text_embeddings" in dict(tiny_model.named_buffers())
    assert not any("text_embeddings" in k or "pixel_mean" in k for k in tiny_model.state_dict())
    twin = sed.create_sed("sed_tiny")
    twin.set_vocabulary(["cat", "dog"])
    twin.double()  # buffers follow .to(); a device move works the same way
    assert twin.text_embeddings.dtype == torch.float64 and twin.text_embeddings.shape == (2, 80, 64)


def test_vocabulary_switch_and_synonyms(tiny_model: sed.SED) -> None:
    before = tiny_model.class_names
    emb = tiny_model.set_vocabulary(["cat", "dog, puppy", "sky"])
    assert emb.shape == (3, 80, 64)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3, 80))
    again = tiny_model.set_vocabulary(["cat", "dog, puppy", "sky"])
    assert again.data_ptr() == emb.data_ptr()  # served from the in-memory cache, not re-encoded
    # Synonyms: per template, the normalised mean of the synonyms' unit embeddings.
    single = tiny_model.set_vocabulary(["dog", "puppy"])
    torch.testing.assert_close(emb[1], F.normalize(single[0] + single[1], dim=-1))
    assert not torch.allclose(emb[1], single[0])
    tiny_model.set_vocabulary(before)


def test_template_count_must_match_p(tiny_model: sed.SED) -> None:
    assert len(get_templates("imagenet")) == 80
    with pytest.raises(ValueError, match="P=80"):
        tiny_model.set_vocabulary(["cat"], templates="imagenet_select")


def test_state_dict_checkpoint_drops_the_clip_cache_identity(tmp_path) -> None:
    """The checkpoint replaces the text tower: the CLIP file must not name the embeddings in the disk cache."""
    from ovcore.clip import save_clip_weights

    clip_file = save_clip_weights(sed.create_sed("sed_tiny").encoder.clip, tmp_path / "clip.safetensors")
    assert sed.create_sed("sed_tiny", pretrained_clip=clip_file).weights_id is not None
    state = sed.create_sed("sed_tiny").state_dict()
    assert sed.create_sed("sed_tiny", pretrained_clip=clip_file, checkpoint=state).weights_id is None


def test_loading_weights_re_encodes_the_vocabulary() -> None:
    a, b = sed.create_sed("sed_tiny"), sed.create_sed("sed_tiny")
    a.set_vocabulary(["cat", "dog"])
    b.set_vocabulary(["cat", "dog"])
    assert not torch.allclose(a.text_embeddings, b.text_embeddings)  # different random text towers
    b.load_state_dict(a.state_dict())
    b.ensure_vocabulary()
    assert b.class_names == ["cat", "dog"]
    torch.testing.assert_close(b.text_embeddings, a.text_embeddings)


# ------------------------------------------------------------------------------------------------------ predict


def test_predict_follows_the_test_pipeline(tiny_model: sed.SED) -> None:
    images = torch.randint(0, 256, (2, 3, 40, 52), dtype=torch.uint8)
    out = tiny_model.predict(images)
    t = len(tiny_model.class_names)
    assert out["probs"].shape == (2, t, 40, 52) and out["labels"].shape == (2, 40, 52)
    assert 0 <= float(out["probs"].min()) and float(out["probs"].max()) <= 1
    assert torch.equal(out["labels"], out["probs"].argmax(1))
    assert out.stats == [{"kept": [t, t, t], "num_classes": t}] * 2 and out.class_names == tiny_model.class_names
    # Manual pipeline: normalise, warp, decoder, sigmoid, resize back.
    with torch.no_grad():
        x = F.interpolate(
            (images.float() - tiny_model.pixel_mean) / tiny_model.pixel_std,
            size=(64, 64),
            mode="bilinear",
            align_corners=False,
        )
        logits, _ = tiny_model.forward_logits(x)
        ref = F.interpolate(logits.sigmoid(), size=(40, 52), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["probs"], ref, atol=1e-5, rtol=1e-4)
    assert not tiny_model.training
    torch.testing.assert_close(tiny_model.predict_probs(images), out["probs"])  # the ovcore.evaluate score function


def test_predict_with_cer_and_new_classes(tiny_model: sed.SED) -> None:
    before = tiny_model.class_names
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = tiny_model.predict(images, class_names=[f"thing {i}" for i in range(12)], k=1)
    assert out["probs"].shape == (2, 12, 64, 64)
    for b in range(2):
        t1, t2, t3 = out.stats[b]["kept"]
        assert 12 >= t1 >= t2 >= t3 >= 1
        assert int((out["probs"][b].flatten(1).amax(1) > 0).sum()) == t3
    full = tiny_model.predict(images, k=12)
    torch.testing.assert_close(full["probs"], tiny_model.predict(images)["probs"], atol=1e-6, rtol=1e-5)
    tiny_model.set_vocabulary(before)


def test_official_test_resize_short_side() -> None:
    model = sed.create_sed("sed_tiny", test_short_side=32, test_max_size=1000)
    images = torch.randint(0, 256, (1, 3, 48, 96), dtype=torch.uint8)
    assert model._test_resize(images).shape == (1, 3, 32, 64)
    assert model.predict(images)["probs"].shape == (1, 8, 48, 96)


# ------------------------------------------------------------------------------------------------------- losses


def test_bce_loss_matches_one_hot_bce() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 4, generator=gen)
    labels = torch.randint(0, 5, (2, 8, 8), generator=gen)
    labels[0, :3] = 255
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    target = torch.zeros_like(up)
    valid = labels != 255
    target[valid] = F.one_hot(labels[valid], 5).float()
    ref = F.binary_cross_entropy_with_logits(up, target)
    torch.testing.assert_close(sed.sed_bce_loss(logits, labels), ref)
    ref_masked = F.binary_cross_entropy_with_logits(up[valid], target[valid])
    torch.testing.assert_close(sed.sed_bce_loss(logits, labels, ignore_mode="mask"), ref_masked)
    with pytest.raises(ValueError, match="outside"):
        sed.sed_bce_loss(logits, torch.full((2, 8, 8), 7))


def test_forward_returns_the_four_losses(tiny_model: sed.SED) -> None:
    batch = {
        "image": torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8),
        "label": torch.randint(0, 8, (2, 64, 64)),
    }
    tiny_model.train()
    try:
        losses = tiny_model(batch)
    finally:
        tiny_model.eval()
    assert list(losses) == ["loss_final", "loss_aux0", "loss_aux1", "loss_aux2"]
    assert all(v.dim() == 0 and v.requires_grad for v in losses.values())


# ---------------------------------------------------------------------------------------------------- optimiser


def _old_official_groups(model: sed.SED, lr: float, wd: float, wd_norm: float) -> dict[str, tuple[float, float]]:
    """The grouping SED.param_groups built before it became OptimConfig rules, rewritten here as the reference:
    ``encoder.`` parameters at lr x clip_lr_multiplier, torch norm layers at wd_norm, the rest at wd."""
    out = {}
    for name, _param, module in named_trainable_parameters(model):
        mult = model.cfg.clip_lr_multiplier if name.startswith("encoder.") else 1.0
        out[name] = (lr * mult, wd_norm if isinstance(module, NORM_TYPES) else wd)
    return out


def _groups_by_name(groups: list[dict]) -> dict[str, tuple[float, float]]:
    return {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["param_names"]}


def test_param_groups_follow_the_official_recipe() -> None:
    model = sed.create_sed("sed_tiny", clip_lr_multiplier=0.01)
    cfg = OptimConfig(lr=2e-4, weight_decay=1e-4, weight_decay_norm=0.0)
    groups = build_optimizer(model, cfg).param_groups
    got = _groups_by_name(groups)
    assert got == _old_official_groups(model, 2e-4, 1e-4, 0.0)
    expected = [(0.01, 0.0), (0.01, 1e-4), (1.0, 0.0), (1.0, 1e-4)]
    assert sorted((g["lr_mult"], g["weight_decay"]) for g in groups) == expected
    # The decoder ConvNeXt LayerNorm is a plain module: it decays (detectron2 only exempts torch norm classes).
    assert isinstance(model.decoder.decoder1.cnext.norm, ChannelsLastLayerNorm)
    assert got["decoder.decoder1.cnext.norm.weight"] == (2e-4, 1e-4)
    assert got["decoder.decoder1.cnext.gamma"] == (2e-4, 1e-4)
    assert got["decoder.decoder1.attention.norm1.weight"] == (2e-4, 0.0)
    assert got["encoder.clip.visual.trunk.stem.1.weight"] == pytest.approx((2e-6, 0.0))  # timm LayerNorm2d
    assert got["encoder.clip.visual.head.proj.weight"] == pytest.approx((2e-6, 1e-4))
    # The frozen text tower is in no group; every trainable parameter is in exactly one.
    assert not any(n.startswith("encoder.clip.transformer") or "token_embedding" in n for n in got)
    assert set(got) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert sum(len(g["params"]) for g in groups) == len(got)


def test_param_group_rules_follow_the_optim_config(tiny_model: sed.SED) -> None:
    cfg = OptimConfig(lr=1e-3, weight_decay=0.05, weight_decay_norm=0.01)
    rules = tiny_model.default_optim(cfg)
    assert dict(rules.lr_multipliers) == {"encoder.*": tiny_model.cfg.clip_lr_multiplier}
    got = _groups_by_name(build_param_groups(tiny_model, rules))
    assert got == _old_official_groups(tiny_model, 1e-3, 0.05, 0.01)
    # The run's own multiplier for the same pattern wins over the preset's (the overfit test's x0.1).
    mine = tiny_model.default_optim(OptimConfig(lr=1e-3, lr_multipliers={"encoder.*": 0.1}))
    assert dict(mine.lr_multipliers) == {"encoder.*": 0.1}
    assert not hasattr(tiny_model, "param_groups")


def test_vocabulary_set_during_inference_can_be_trained_on() -> None:
    """predict(class_names=...) runs under inference_mode; the embeddings must still work in a training step."""
    model = sed.create_sed("sed_tiny")
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with torch.inference_mode():
        model.set_vocabulary(["cat", "dog"])
    model.predict(images, class_names=["cat", "dog", "sky"])
    assert not model.text_embeddings.is_inference()
    model.train()
    losses = model({"image": images, "label": torch.randint(0, 3, (1, 64, 64))})
    sum(losses.values()).backward()
