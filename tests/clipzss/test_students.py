"""Students (timm features_only + heads) and the preset registry."""

from __future__ import annotations

import pytest
import torch

import clipzss
from clipzss.config import StudentConfig
from clipzss.heads import create_head, list_heads
from clipzss.students import Student

TINY_SWIN = {"img_size": 64, "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "window_size": 4}


@pytest.mark.parametrize(
    ("backbone", "kwargs"),
    [("convnext_atto", {}), ("resnet10t", {}), ("swin_tiny_patch4_window7_224", TINY_SWIN)],
)
@pytest.mark.parametrize("head", ["segformer", "upernet"])
def test_student_outputs_c_channels_at_quarter_resolution(backbone: str, kwargs: dict, head: str) -> None:
    student = Student(StudentConfig(backbone=backbone, backbone_kwargs=kwargs, head=head, head_channels=16), 24)
    out = student(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 24, 16, 16)
    assert len(student.mean) == 3


def test_heads_registry() -> None:
    assert list_heads() == ["segformer", "upernet"]
    with pytest.raises(ValueError):
        create_head("fpn", [8, 16, 32, 64], 4)


def test_presets_are_registered_and_overridable() -> None:
    names = clipzss.list_presets()
    assert {"clipzss_swin_b_upernet", "clipzss_convnext_b_upernet", "clipzss_tiny_convnext_segformer"} <= set(names)
    assert clipzss.list_presets("clipzss_tiny_*") == [n for n in names if n.startswith("clipzss_tiny_")]
    cfg = clipzss.get_preset_config("clipzss_swin_b_upernet")
    assert cfg.student.backbone.startswith("swin_base") and cfg.student.head == "upernet"
    assert cfg.teacher.model_name == "ViT-B-16" and cfg.crop_size == 512
    assert cfg.glm.bank_size == 24 and cfg.plm.fusion_threshold == 0.8 and cfg.loss.beta == 2.0
    coco = clipzss.get_preset_config("clipzss_swin_b_upernet", dataset="coco_stuff_zs", plm__fusion_threshold=0.9)
    assert coco.seen_calibration == 1.5 and coco.teacher.templates == "zegclip" and coco.plm.fusion_threshold == 0.9
    voc = clipzss.get_preset_config("clipzss_convnext_b_upernet", dataset="voc_zs")
    assert voc.teacher.templates == "zegclip_single" and voc.seen_calibration == 0.0
    with pytest.raises(ValueError):
        clipzss.get_preset_config("clipzss_nope")
    with pytest.raises(ValueError):
        clipzss.get_preset_config("clipzss_swin_b_upernet", plm__nope=1)
    with pytest.raises(ValueError):
        clipzss.get_preset_config("clipzss_swin_b_upernet", plm={"nope": 1})


def test_config_round_trip() -> None:
    cfg = clipzss.get_preset_config("clipzss_tiny_swin_upernet", glm={"bank_size": 3})
    assert cfg.glm.bank_size == 3
    data = clipzss.config_to_dict(cfg)
    assert clipzss.config_to_dict(clipzss.config_from_dict(data)) == data


def test_swin_b_student_builds_on_meta() -> None:
    cfg = clipzss.get_preset_config("clipzss_swin_b_upernet").student
    cfg = StudentConfig(**{**cfg.__dict__, "pretrained": False})
    with torch.device("meta"):
        student = Student(cfg, 512)
        out = student(torch.empty(1, 3, 512, 512))
    assert out.shape == (1, 512, 128, 128)
    assert student.channels_last_output  # Swin features are NHWC in timm


def test_pretrained_offline_fails_fast() -> None:
    cfg = StudentConfig(backbone="resnet10t", pretrained="/nonexistent/weights.pth")
    with pytest.raises((RuntimeError, FileNotFoundError, OSError)):
        Student(cfg, 8)
