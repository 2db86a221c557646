"""The CLIP-ZSS training wrapper and the inference model (model contract, export, no image tower at inference)."""

from __future__ import annotations

import math

import pytest
import torch

import clipzss
from clipzss.segmenter import ZeroShotSegmenter, student_scores
from conftest import demo_batch
from ovcore.method import Prediction

LOSSES = {"loss_global", "loss_nel", "loss_ce", "loss_bce"}


def test_training_forward_returns_named_finite_losses(make_tiny) -> None:
    model = make_tiny().train()
    batch = demo_batch(4)
    losses = model(batch)
    assert set(losses) == LOSSES
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["log_alpha"] is not None
    assert all(g is not None for n, g in grads.items() if n.startswith("student.head."))
    assert model.last_stats["num_pseudo"] > 0
    assert len(model.glm.bank) == 1


@pytest.mark.parametrize("case", ["no_seen_pixels", "no_unannotated_pixels", "single_image", "padding"])
def test_every_loss_is_finite_on_edge_cases(make_tiny, case: str) -> None:
    model = make_tiny("clipzss_tiny_resnet_upernet").train()
    batch = demo_batch(1 if case == "single_image" else 2)
    if case == "no_seen_pixels":
        batch["label"].fill_(255)
    elif case == "no_unannotated_pixels":
        batch["label"] = batch["label"].clamp(0, 5)  # every pixel a seen class
    elif case == "padding":
        batch["image"][..., 40:, :] = 0
        batch["label"][:, 40:, :] = 255
    losses = model(batch)
    assert set(losses) == LOSSES
    for name, value in losses.items():
        assert torch.isfinite(value), name
    sum(losses.values()).backward()
    # DDP without find_unused_parameters: every trainable parameter is in the graph, whatever the batch holds
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing[:5]
    if case == "no_unannotated_pixels":
        assert model.last_stats["num_pseudo"] == 0
    if case == "padding":
        pl = model.pseudo_labels(batch)
        assert (pl.fused[:, 40:] == -1).all()  # padding stays ignore (-1 in the fused labels)


# One non-default value of each config alternative of the training step outside the PLM (the PLM options are
# checked on PseudoLabeler, where the tokens have more than the demo scenes' few unannotated tokens).
ALTERNATIVES = {
    "glm__pooling": "max",
    "loss__bce_mode": "positive",
    "loss__loss_resolution": "feature",
    "loss__normalize_features": False,
    "synthesizer__kind": "mlp",
    "synthesizer__memory": "batch+bank",
    "teacher__normalization": "student",
}


def _two_steps(model, batches) -> dict[str, torch.Tensor]:
    # Same dropout draws for every model; the second step has a CLS bank (read by synthesizer memory "batch+bank").
    for step, batch in enumerate(batches):
        torch.manual_seed(step)
        losses = model(batch)
    return losses


@pytest.mark.parametrize("key", sorted(ALTERNATIVES))
def test_config_alternatives_train_and_take_effect(make_tiny, key: str) -> None:
    batches = [demo_batch(2, seed=0), demo_batch(2, seed=1)]
    ref = _two_steps(make_tiny().train(), batches)
    assert all(torch.equal(v, ref[k]) for k, v in _two_steps(make_tiny().train(), batches).items())  # control
    model = make_tiny(**{key: ALTERNATIVES[key]}).train()
    losses = _two_steps(model, batches)
    assert set(losses) == LOSSES and all(torch.isfinite(v) for v in losses.values())
    assert any(not torch.equal(v, ref[k]) for k, v in losses.items()), "the option changed nothing"
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing[:5]


def test_fixed_alpha_and_detached_queries(make_tiny) -> None:
    batch = demo_batch(2)
    fixed = make_tiny(loss__learnable_alpha=False).train()
    assert "log_alpha" not in dict(fixed.named_parameters()) and "log_alpha" in dict(fixed.named_buffers())
    sum(fixed(batch).values()).backward()
    assert float(fixed.alpha) == pytest.approx(1 / 0.07)
    # L_bce reaches the student through the centroids, unless the synthesizer detaches its queries
    for detach in (False, True):
        model = make_tiny(synthesizer__detach_queries=detach).train()
        model(batch)["loss_bce"].backward()
        grad = model.student.head.out.weight.grad
        assert (grad is None or not grad.any()) == detach


def test_teacher_is_frozen_and_outside_the_state_dict(make_tiny) -> None:
    model = make_tiny()
    teacher_params = {id(p) for p in model.teacher.parameters()}
    assert teacher_params and not teacher_params & {id(p) for p in model.parameters()}
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert not any("visual" in k or k.startswith("teacher") for k in model.state_dict())
    model.train()
    assert not model.teacher.training
    model.double()  # .to() / .double() still reach the teacher
    assert next(model.teacher.parameters()).dtype == torch.float64
    model.float()
    # text embeddings and tables are non-persistent buffers: moved by .to(), absent from the state dict
    buffers = dict(model.named_buffers())
    assert {"seen_text", "text_embeddings", "label_lut"} <= set(buffers)
    assert not {"seen_text", "text_embeddings"} & set(model.state_dict())
    sd = model.state_dict()
    fresh = make_tiny()
    fresh.load_state_dict(sd)  # strict: the checkpoint of the wrapper round-trips


def _old_clipzss_groups(model, cfg) -> dict[str, tuple[float, float]]:
    """The grouping CLIPZSS.param_groups built before it became OptimConfig rules, rewritten here as the reference:
    ``student.backbone.`` at lr x backbone_lr_mult, the rest at lr x head_lr_mult; weight decay by the shared rule
    with the position tables and the learned scalars exempt."""
    from ovcore.train.optim import named_trainable_parameters, weight_decay_of

    extra = (*model.cfg.no_decay_names, "log_alpha", "bce_log_scale", "bce_bias")
    out = {}
    for name, param, module in named_trainable_parameters(model):
        backbone = name.startswith("student.backbone.")
        mult = model.cfg.backbone_lr_mult if backbone else model.cfg.head_lr_mult
        out[name] = (cfg.lr * mult, weight_decay_of(name, param, module, cfg, extra))
    return out


@pytest.mark.parametrize("decay_1d", [True, False])
def test_param_group_rules_give_the_old_groups(make_tiny, decay_1d: bool) -> None:
    from ovcore.train import OptimConfig, build_optimizer

    model = make_tiny("clipzss_tiny_swin_upernet", backbone_lr_mult=0.1, head_lr_mult=2.0)
    cfg = OptimConfig(lr=1e-3, weight_decay=0.01, decay_1d=decay_1d)
    groups = build_optimizer(model, cfg).param_groups
    got = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["param_names"]}
    assert got == _old_clipzss_groups(model, cfg)
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert got["log_alpha"][1] == got["bce_bias"][1] == 0.0
    assert any("relative_position_bias_table" in n and wd == 0.0 for n, (_, wd) in got.items())
    assert not hasattr(model, "param_groups")


def test_predict_and_vocabulary(make_tiny) -> None:
    model = make_tiny().train()
    batch = demo_batch(2)
    out = model.predict(batch["image"])
    assert isinstance(out, Prediction) and model.training  # predict runs in eval mode and restores the mode
    assert out.probs.shape == (2, 8, 64, 64) and torch.equal(out.labels, out.probs.argmax(1))
    torch.testing.assert_close(out.probs.sum(1), torch.ones(2, 64, 64))
    assert out.stats[0] == {"mode": "whole", "num_classes": 8, "seen_calibration": model.cfg.seen_calibration}
    # float input is 0..255 RGB (the contract's image rule), not normalised
    torch.testing.assert_close(model.predict(batch["image"].float()).probs, out.probs)
    out = model.predict(batch["image"], class_names=["water", "sky"])
    assert out.probs.shape == (2, 2, 64, 64) and out.class_names == ["water", "sky"]
    torch.testing.assert_close(model.text_embeddings[1], model.seen_text[0])  # "sky" is seen class 0
    slide = model.predict(torch.randint(0, 255, (1, 3, 80, 100), dtype=torch.uint8), mode="slide")
    assert slide.probs.shape == (1, 2, 80, 100) and slide.stats[0]["mode"] == "slide"


def test_set_vocabulary_with_templates(make_tiny) -> None:
    model = make_tiny()
    model.set_vocabulary(["sky", "water"])
    default = model.text_embeddings.clone()
    model.set_vocabulary(["sky", "water"], templates=["a photo of a {}.", "a rendering of a {}."])
    assert not torch.allclose(model.text_embeddings, default)
    expected = model.teacher.encode_classes(["sky", "water"], ["a photo of a {}.", "a rendering of a {}."])
    torch.testing.assert_close(model.text_embeddings, expected.to(model.text_embeddings))
    model.set_vocabulary(["sky", "water"])
    torch.testing.assert_close(model.text_embeddings, default)


def _logits(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return student_scores(model.student, images, mean=model.student_mean, std=model.student_std,
                              text=model.text_embeddings, alpha=model.alpha, seen_mask=model.seen_mask, cfg=model.cfg)


def test_seen_calibration_lowers_seen_scores(make_tiny) -> None:
    model = make_tiny(seen_calibration=1.5).eval()
    base = make_tiny(seen_calibration=0.0).eval()
    images = demo_batch(1)["image"]
    diff = _logits(base, images) - _logits(model, images)
    seen = model.seen_mask
    torch.testing.assert_close(diff[:, seen], torch.full_like(diff[:, seen], 1.5))
    torch.testing.assert_close(diff[:, ~seen], torch.zeros_like(diff[:, ~seen]))


def test_export_round_trip(make_tiny, tmp_path) -> None:
    model = make_tiny().eval()
    with torch.no_grad():
        model.log_alpha.fill_(math.log(20.0))
    path = tmp_path / "clipzss.pt"
    torch.save(model.export_inference_state_dict(), path)
    seg = clipzss.create_segmenter(path)
    images = demo_batch(2)["image"]
    torch.testing.assert_close(seg.predict(images).probs, model.predict(images).probs)
    assert seg.class_names == model.class_names
    model.set_vocabulary(["sky", "water"])
    copy = model.to_segmenter()  # the in-memory route keeps the current vocabulary
    assert copy.class_names == ["sky", "water"]
    torch.testing.assert_close(copy.predict(images).probs, model.predict(images).probs)
    payload = torch.load(path, weights_only=True)
    assert not any(k.startswith("visual") for k in payload["text_encoder"]["state_dict"])
    assert not any("visual" in k for k in payload["student"])


def test_inference_builds_no_clip_image_tower(make_tiny, tmp_path, monkeypatch) -> None:
    """Loading and running the inference model never builds, loads or runs a CLIP image tower."""
    model = make_tiny().eval()
    path = tmp_path / "clipzss.pt"
    torch.save(model.export_inference_state_dict(), path)
    images = demo_batch(1)["image"]
    expected = model.predict(images).probs
    new_names = ["purple hexagon", "sky"]
    model.set_vocabulary(new_names)
    expected_new = model.text_embeddings.clone()

    def forbidden(*args, **kwargs):
        raise AssertionError("a CLIP image tower was requested at inference")

    import open_clip.model

    import clipzss.teacher
    import ovcore.clip
    import ovcore.clip.encoders

    monkeypatch.setattr(open_clip, "create_model", forbidden)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", forbidden)
    monkeypatch.setattr(open_clip.model, "_build_vision_tower", forbidden)
    monkeypatch.setattr(open_clip.model.CLIP, "__init__", forbidden)
    monkeypatch.setattr(ovcore.clip, "create_clip", forbidden)
    monkeypatch.setattr(ovcore.clip.encoders.ViTCLIPEncoder, "__init__", forbidden)
    monkeypatch.setattr(clipzss.teacher.CLIPTeacher, "__init__", forbidden)

    seg = ZeroShotSegmenter.from_checkpoint(path)
    torch.testing.assert_close(seg.predict(images).probs, expected)
    kinds = {type(m).__name__ for m in seg.modules()}
    assert not kinds & {"VisionTransformer", "CLIP", "ViTCLIPEncoder", "CLIPTeacher", "TextTower"}
    # a new name is encoded by the text-only tower (random-init teacher: its text weights are in the checkpoint)
    seg.set_vocabulary(new_names)
    torch.testing.assert_close(seg.text_embeddings, expected_new, atol=1e-5, rtol=1e-5)
    kinds = {type(m).__name__ for m in seg.modules()}
    assert "VisionTransformer" not in kinds and "CLIP" not in kinds


def test_vocabulary_without_text_encoder_needs_embeddings(make_tiny) -> None:
    model = make_tiny()
    payload = model.export_inference_state_dict(include_text_tower=False)
    seg = ZeroShotSegmenter.from_checkpoint(payload)
    with pytest.raises(RuntimeError):
        seg.set_vocabulary(["unknown thing"])
    seg.set_text_embeddings(torch.randn(1, model.embed_dim), ["unknown thing"])
    assert seg.text_embeddings.shape == (1, model.embed_dim)
    with pytest.raises(ValueError):
        ZeroShotSegmenter.from_checkpoint({"format": "other"})


def test_compact_label_convention(make_tiny) -> None:
    from ovcore.data import compact_seen_labels

    # non-identity seen ids: striped texture (7), water (2), red circle (4), sky (0) are compact 0, 1, 2, 3
    seen = [7, 2, 4, 0]
    dataset_ids = make_tiny(seen_classes=seen)
    compact = make_tiny(seen_classes=seen, label_ids="compact")
    label = torch.tensor([[[0, 1, 2, 3, 4, 5, 6, 7, 255]]])
    expect = [[[3, -1, 1, -1, 2, -1, -1, 0, -1]]]  # unseen and ignore -> -1 (the compact labels' ignore)
    assert dataset_ids.compact_labels(label).tolist() == expect
    assert compact.compact_labels(compact_seen_labels(label, seen)).tolist() == expect
    # compact labels: ids past Ns and the dataset's ignore value are ignore; uint8 input gives int64 ids
    raw = torch.tensor([[[0, 3, 4, 255, 200]]], dtype=torch.uint8)
    assert compact.compact_labels(raw).tolist() == [[[0, 3, -1, -1, -1]]]
    assert compact.compact_labels(raw).dtype == dataset_ids.compact_labels(raw).dtype == torch.int64
    assert dataset_ids.compact_labels(raw).tolist() == [[[3, -1, 2, -1, -1]]]
    # training sees the same compact labels either way: the same losses
    batch = demo_batch(2)
    as_compact = {**batch, "label": compact_seen_labels(batch["label"], seen)}
    torch.manual_seed(0)
    a = dataset_ids.train()(batch)
    torch.manual_seed(0)
    b = compact.train()(as_compact)
    assert all(torch.equal(a[k], b[k]) for k in a)
